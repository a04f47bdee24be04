//! Struct member offsets from the kernel's BTF (`/sys/kernel/btf/vmlinux`), for the latency
//! program, which reads a completing `struct request` whose layout differs between kernels.
//!
//! Only what that needs: the type section is walked once, structs are found by name and their
//! members (also those inside anonymous structs and unions) by name. aya-obj parses BTF too,
//! but keeps its type lookups crate-private.
use std::{collections::HashMap, path::Path};

use anyhow::{Context, Result, bail};
use marginal_common::{NO_OFFSET, RequestLayout};

/// Where the kernel publishes its own BTF.
pub const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;

/// One struct or union: its members as (name offset, type id, bit offset).
struct Composite {
    members: Vec<(u32, u32, u32)>,
}

/// The kernel's structs and unions, enough to find member offsets.
pub struct Btf {
    strings: Vec<u8>,
    /// By type id (1-based, as in BTF); `None` for types that are not structs or unions.
    composites: Vec<Option<Composite>>,
    structs_by_name: HashMap<String, u32>,
}

impl Btf {
    pub fn from_kernel() -> Result<Self> {
        Self::from_file(Path::new(KERNEL_BTF))
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let data = std::fs::read(path).with_context(|| {
            format!(
                "reading {} (latency measuring needs a kernel built with \
                 CONFIG_DEBUG_INFO_BTF)",
                path.display()
            )
        })?;
        Self::parse(&data).with_context(|| format!("parsing the BTF in {}", path.display()))
    }

    pub fn parse(data: &[u8]) -> Result<Self> {
        let u16_at = |at: usize| -> Result<u16> {
            Ok(u16::from_le_bytes(
                data.get(at..at + 2).context("truncated")?.try_into()?,
            ))
        };
        let u32_at = |at: usize| -> Result<u32> {
            Ok(u32::from_le_bytes(
                data.get(at..at + 4).context("truncated")?.try_into()?,
            ))
        };
        if u16_at(0)? != MAGIC {
            bail!("not little-endian BTF (bad magic)");
        }
        let header_len = u32_at(4)? as usize;
        let types_start = header_len + u32_at(8)? as usize;
        let types_end = types_start + u32_at(12)? as usize;
        let strings_start = header_len + u32_at(16)? as usize;
        let strings_end = strings_start + u32_at(20)? as usize;
        let strings = data
            .get(strings_start..strings_end)
            .context("string section out of bounds")?
            .to_vec();
        let mut btf = Self {
            strings,
            composites: vec![None],
            structs_by_name: HashMap::new(),
        };
        let mut at = types_start;
        while at < types_end {
            let name = u32_at(at)?;
            let info = u32_at(at + 4)?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let bitfields = info >> 31 == 1;
            at += 12;
            let trailer = match kind {
                1 | 14 | 17 => 4,             // int, var, decl_tag
                3 => 12,                      // array
                4 | 5 | 15 | 19 => vlen * 12, // struct, union, datasec, enum64
                6 | 13 => vlen * 8,           // enum, func_proto
                0 | 2 | 7..=12 | 16 | 18 => 0,
                other => bail!("unknown BTF kind {other}"),
            };
            let composite = if kind == KIND_STRUCT || kind == KIND_UNION {
                let mut members = Vec::with_capacity(vlen);
                for m in 0..vlen {
                    let base = at + m * 12;
                    let offset = u32_at(base + 8)?;
                    // With the kind flag, the high 8 bits are a bitfield's size.
                    let bit_offset = if bitfields {
                        offset & 0xff_ffff
                    } else {
                        offset
                    };
                    members.push((u32_at(base)?, u32_at(base + 4)?, bit_offset));
                }
                if kind == KIND_STRUCT && name != 0 {
                    let id = btf.composites.len() as u32;
                    let name = btf.string(name)?.to_string();
                    btf.structs_by_name.entry(name).or_insert(id);
                }
                Some(Composite { members })
            } else {
                None
            };
            btf.composites.push(composite);
            at += trailer;
        }
        Ok(btf)
    }

    fn string(&self, offset: u32) -> Result<&str> {
        let tail = self
            .strings
            .get(offset as usize..)
            .context("string offset out of bounds")?;
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        Ok(std::str::from_utf8(&tail[..end])?)
    }

    /// Byte offset of `member` in `struct name`, or `None` if the struct has no such member.
    pub fn member_offset(&self, name: &str, member: &str) -> Result<Option<u32>> {
        let id = *self
            .structs_by_name
            .get(name)
            .with_context(|| format!("the kernel's BTF has no struct {name}"))?;
        self.find_member(id, member, 0)
    }

    fn find_member(&self, id: u32, member: &str, base_bits: u32) -> Result<Option<u32>> {
        let Some(Some(composite)) = self.composites.get(id as usize) else {
            return Ok(None);
        };
        for &(name, type_id, bits) in &composite.members {
            if name == 0 {
                // An anonymous struct or union: its members are the outer struct's.
                if let Some(found) = self.find_member(type_id, member, base_bits + bits)? {
                    return Ok(Some(found));
                }
            } else if self.string(name)? == member {
                let bits = base_bits + bits;
                if !bits.is_multiple_of(8) {
                    bail!("member {member} is a bitfield");
                }
                return Ok(Some(bits / 8));
            }
        }
        Ok(None)
    }

    /// What the latency program reads from a `struct request`.
    pub fn request_layout(&self) -> Result<RequestLayout> {
        let required = |name: &str, member: &str| -> Result<u32> {
            self.member_offset(name, member)?
                .with_context(|| format!("the kernel's struct {name} has no member {member}"))
        };
        let rq_disk = self.member_offset("request", "rq_disk")?;
        let queue_disk = match rq_disk {
            Some(_) => None,
            None => Some(required("request_queue", "disk")?),
        };
        let disk_major = required("gendisk", "major")?;
        if required("gendisk", "first_minor")? != disk_major + 4 {
            bail!("the kernel's struct gendisk has first_minor apart from major");
        }
        // `request.part` is a `struct block_device *` since 5.11, when `struct hd_struct` went.
        let (part, part_dev) = match (
            self.structs_by_name.contains_key("hd_struct"),
            self.member_offset("request", "part")?,
            self.member_offset("block_device", "bd_dev")?,
        ) {
            (false, Some(part), Some(bd_dev)) => (part, bd_dev),
            _ => (NO_OFFSET, NO_OFFSET),
        };
        Ok(RequestLayout {
            part,
            part_dev,
            rq_disk: rq_disk.unwrap_or(NO_OFFSET),
            queue: required("request", "q")?,
            queue_disk: queue_disk.unwrap_or(NO_OFFSET),
            disk_major,
            cmd_flags: required("request", "cmd_flags")?,
            start_time_ns: required("request", "start_time_ns")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The running kernel's layout, checked against what every kernel since 5.0 has: `q`
    /// first in `struct request`, a start time after it.
    #[test]
    fn the_running_kernels_request_layout() {
        if !Path::new(KERNEL_BTF).exists() {
            eprintln!("no kernel BTF here; nothing to check");
            return;
        }
        let layout = Btf::from_kernel().unwrap().request_layout().unwrap();
        assert_eq!(layout.queue, 0);
        assert!(layout.start_time_ns > layout.cmd_flags, "{layout:?}");
        assert!(layout.rq_disk != NO_OFFSET || layout.queue_disk != NO_OFFSET);
        // Every kernel the VM tests use since 5.11 reaches the device through `part`.
        assert_ne!(layout.part, NO_OFFSET, "{layout:?}");
    }

    #[test]
    fn not_btf_is_an_error() {
        let error = Btf::parse(b"\x7fELF").err().unwrap();
        assert!(format!("{error:#}").contains("magic"), "{error:#}");
    }
}
