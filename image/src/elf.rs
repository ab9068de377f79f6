//! Just enough ELF to tell a static executable from a dynamic one: a dynamic
//! one names its loader in a PT_INTERP program header, and the image has none.

use std::path::Path;

use crate::Error;

const PT_INTERP: u32 = 3;

/// The program interpreter an x86-64 ELF executable asks for, if any.
pub fn interpreter(path: &Path, bytes: &[u8]) -> Result<Option<String>, Error> {
    let not_elf = |why| Error::NotElf {
        path: path.to_path_buf(),
        why,
    };
    if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(not_elf("no ELF magic"));
    }
    // EI_CLASS 2 = 64-bit, EI_DATA 1 = little-endian.
    if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return Err(not_elf("not ELFCLASS64/ELFDATA2LSB"));
    }
    let u16_at = |off: usize| {
        bytes
            .get(off..off + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |off: usize| {
        bytes
            .get(off..off + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |off: usize| {
        bytes.get(off..off + 8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        })
    };
    let truncated = || not_elf("truncated header");
    let phoff = usize::try_from(u64_at(0x20).ok_or_else(truncated)?).map_err(|_| truncated())?;
    let phentsize = usize::from(u16_at(0x36).ok_or_else(truncated)?);
    let phnum = usize::from(u16_at(0x38).ok_or_else(truncated)?);
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(ph).ok_or_else(truncated)? != PT_INTERP {
            continue;
        }
        let off =
            usize::try_from(u64_at(ph + 8).ok_or_else(truncated)?).map_err(|_| truncated())?;
        let len =
            usize::try_from(u64_at(ph + 32).ok_or_else(truncated)?).map_err(|_| truncated())?;
        let raw = bytes.get(off..off + len).ok_or_else(truncated)?;
        let name = String::from_utf8_lossy(raw);
        return Ok(Some(name.trim_end_matches('\0').to_owned()));
    }
    Ok(None)
}

/// Fails with [`Error::Dynamic`] unless the executable is static.
pub fn require_static(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    match interpreter(path, bytes)? {
        None => Ok(()),
        Some(interpreter) => Err(Error::Dynamic {
            path: path.to_path_buf(),
            interpreter,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_binary_itself_is_recognised() {
        // Whatever the target, the running test binary is an ELF file that
        // parses; on glibc it names ld-linux, on musl static builds none.
        let exe = std::env::current_exe().expect("current exe");
        let bytes = std::fs::read(&exe).expect("read exe");
        let interp = interpreter(&exe, &bytes).expect("an ELF file");
        if cfg!(target_env = "gnu") {
            let interp = interp.expect("a glibc test binary is dynamic");
            assert!(interp.contains("ld-linux"), "{interp}");
            assert!(matches!(
                require_static(&exe, &bytes),
                Err(Error::Dynamic { .. })
            ));
        }
    }

    #[test]
    fn non_elf_is_refused_with_the_reason() {
        let err = interpreter(Path::new("x"), b"#!/bin/sh\n").unwrap_err();
        assert!(err.to_string().contains("no ELF magic"), "{err}");
        let err = interpreter(Path::new("x"), b"\x7fELF\x02\x01").unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}
