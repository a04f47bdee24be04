//! Struct member offsets from the kernel's BTF (`/sys/kernel/btf/vmlinux`), for the latency
//! program, which reads a completing `struct request` whose layout differs between kernels.
//!
//! Only what that needs: the type section is walked once, structs are found by name and their
//! members (also those inside anonymous structs and unions) by name. aya-obj parses BTF too,
//! but keeps its type lookups crate-private.
use std::path::Path;

use anyhow::{Context, Result, bail};
use marginal_common::{NO_OFFSET, RequestLayout};

/// Where the kernel publishes its own BTF.
pub const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;

/// The kernel's types, enough to find member offsets. Only the raw section and where each
/// type starts are kept (read once at start-up, then dropped): nothing per member is built, so
/// reading it leaves nothing behind in the daemon's heap.
pub struct Btf {
    data: Vec<u8>,
    strings: std::ops::Range<usize>,
    /// Where each type's record starts in `data`, by type id (1-based, as in BTF; 0 unused).
    types: Vec<u32>,
}

fn u16_at(data: &[u8], at: usize) -> Result<u16> {
    Ok(u16::from_le_bytes(
        data.get(at..at + 2).context("truncated")?.try_into()?,
    ))
}

fn u32_at(data: &[u8], at: usize) -> Result<u32> {
    Ok(u32::from_le_bytes(
        data.get(at..at + 4).context("truncated")?.try_into()?,
    ))
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
        Self::parse(data).with_context(|| format!("parsing the BTF in {}", path.display()))
    }

    pub fn parse(data: Vec<u8>) -> Result<Self> {
        if u16_at(&data, 0)? != MAGIC {
            bail!("not little-endian BTF (bad magic)");
        }
        let header_len = u32_at(&data, 4)? as usize;
        let types_start = header_len + u32_at(&data, 8)? as usize;
        let types_end = types_start + u32_at(&data, 12)? as usize;
        let strings_start = header_len + u32_at(&data, 16)? as usize;
        let strings_end = strings_start + u32_at(&data, 20)? as usize;
        if strings_end > data.len() || types_end > data.len() {
            bail!("section out of bounds");
        }
        let mut types = vec![0];
        let mut at = types_start;
        while at < types_end {
            types.push(at as u32);
            let info = u32_at(&data, at + 4)?;
            let vlen = (info & 0xffff) as usize;
            at += 12
                + match (info >> 24) & 0x1f {
                    1 | 14 | 17 => 4,             // int, var, decl_tag
                    3 => 12,                      // array
                    4 | 5 | 15 | 19 => vlen * 12, // struct, union, datasec, enum64
                    6 | 13 => vlen * 8,           // enum, func_proto
                    0 | 2 | 7..=12 | 16 | 18 => 0,
                    other => bail!("unknown BTF kind {other}"),
                };
        }
        Ok(Self {
            data,
            strings: strings_start..strings_end,
            types,
        })
    }

    fn string(&self, offset: u32) -> Result<&str> {
        let tail = self
            .data
            .get(self.strings.start + offset as usize..self.strings.end)
            .context("string offset out of bounds")?;
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        Ok(std::str::from_utf8(&tail[..end])?)
    }

    /// (kind, name offset, vlen, kind flag) of type `id`.
    fn header(&self, id: u32) -> Result<(u32, u32, usize, bool)> {
        let at = *self
            .types
            .get(id as usize)
            .context("type id out of range")? as usize;
        let info = u32_at(&self.data, at + 4)?;
        Ok((
            (info >> 24) & 0x1f,
            u32_at(&self.data, at)?,
            (info & 0xffff) as usize,
            info >> 31 == 1,
        ))
    }

    /// The id of the first struct named `name`.
    fn struct_id(&self, name: &str) -> Result<Option<u32>> {
        for id in 1..self.types.len() as u32 {
            let (kind, name_offset, _, _) = self.header(id)?;
            if kind == KIND_STRUCT && name_offset != 0 && self.string(name_offset)? == name {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// Whether the kernel has a struct of that name.
    pub fn has_struct(&self, name: &str) -> Result<bool> {
        Ok(self.struct_id(name)?.is_some())
    }

    /// Byte offset of `member` in `struct name`, or `None` if the struct has no such member.
    pub fn member_offset(&self, name: &str, member: &str) -> Result<Option<u32>> {
        let id = self
            .struct_id(name)?
            .with_context(|| format!("the kernel's BTF has no struct {name}"))?;
        self.find_member(id, member, 0)
    }

    fn find_member(&self, id: u32, member: &str, base_bits: u32) -> Result<Option<u32>> {
        let (kind, _, vlen, bitfields) = self.header(id)?;
        if kind != KIND_STRUCT && kind != KIND_UNION {
            return Ok(None);
        }
        let members = self.types[id as usize] as usize + 12;
        for m in 0..vlen {
            let base = members + m * 12;
            let name = u32_at(&self.data, base)?;
            let type_id = u32_at(&self.data, base + 4)?;
            let offset = u32_at(&self.data, base + 8)?;
            // With the kind flag, the high 8 bits are a bitfield's size.
            let bits = if bitfields {
                offset & 0xff_ffff
            } else {
                offset
            };
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
            self.has_struct("hd_struct")?,
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
        let error = Btf::parse(b"\x7fELF".to_vec()).err().unwrap();
        assert!(format!("{error:#}").contains("magic"), "{error:#}");
    }
}
