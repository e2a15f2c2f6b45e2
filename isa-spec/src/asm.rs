//! placeholder
pub fn format_inst(inst: &crate::Inst) -> String {
    let mut s = inst.opcode().name().to_string();
    inst.write_fields(&mut s);
    inst.sync().write_asm(&mut s);
    s
}
