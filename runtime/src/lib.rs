//! tahoma's runtime: the program loader and the emulator.
