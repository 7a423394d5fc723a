//! The engine's promises: determinism, shared prefill, fork equivalence, rollback, cancellation.

use super::*;

#[test]
fn fixed_seed_gives_identical_samples_twice() {
    let engine = smol(uncached());
    let a = block(async { engine.sample(req(4, sampled(42, 48))).await?.collect().await }).unwrap();
    let b = block(async { engine.sample(req(4, sampled(42, 48))).await?.collect().await }).unwrap();
    let texts = |c: &ponder_core::generator::Collected| c.samples.iter().map(|s| s.text.clone()).collect::<Vec<_>>();
    assert_eq!(texts(&a), texts(&b));
    assert_eq!(a.samples.len(), 4);
    // Different seeds inside one request give different samples.
    let distinct: std::collections::HashSet<_> = texts(&a).into_iter().collect();
    assert!(distinct.len() > 1, "4 sampled continuations were all identical");
    let c = block(async { engine.sample(req(4, sampled(43, 48))).await?.collect().await }).unwrap();
    assert_ne!(texts(&a), texts(&c));
}

#[test]
fn n_samples_prefill_the_prompt_once() {
    let engine = smol(uncached());
    let prompt_len = engine.tokenize(&engine.render(&question()).unwrap()).len() as u64;
    let got = block(async { engine.sample(req(16, sampled(1, 8))).await?.collect().await }).unwrap();
    assert_eq!(got.samples.len(), 16);
    assert_eq!(got.usage.prompt_computed, prompt_len, "usage: {:?}", got.usage);
    assert_eq!(got.usage.prompt_reused, 15 * prompt_len);
    let generated: usize = got.samples.iter().map(|s| s.n_tokens).sum();
    assert_eq!(got.usage.completion, generated as u64);
    for s in &got.samples {
        assert_eq!(s.token_logprobs.len(), s.n_tokens);
        assert!(s.token_logprobs.iter().all(|l| l.is_finite() && *l <= 0.0));
        // Each token's bytes, in order, spell the text (an end token adds none).
        assert_eq!(s.token_bytes.len(), s.n_tokens);
        assert_eq!(s.token_bytes.concat(), s.text.as_bytes(), "{s:?}");
    }
}

#[test]
fn prefix_cache_reuses_a_repeated_prompt() {
    let engine = smol(config());
    let prompt_len = engine.tokenize(&engine.render(&question()).unwrap()).len() as u64;
    block(async { engine.sample(req(2, sampled(1, 4))).await?.collect().await }).unwrap();
    let again = block(async { engine.sample(req(2, sampled(2, 4))).await?.collect().await }).unwrap();
    // Only the last prompt token is recomputed (its logits are needed).
    assert_eq!(again.usage.prompt_computed, 1, "usage: {:?}", again.usage);
    assert_eq!(again.usage.prompt_computed + again.usage.prompt_reused, 2 * prompt_len);
}

#[test]
fn greedy_forks_equal_independent_prefills() {
    let engine = smol(uncached());
    let prompt = engine.tokenize(&engine.render(&question()).unwrap());
    let n = 4;
    let first = StepParams { sampling: sampled(9, 3), delimiter: None, max_step_tokens: 3, max_total_tokens: 64 };
    let rest = StepParams { sampling: greedy(24), delimiter: None, max_step_tokens: 24, max_total_tokens: 64 };
    // Forked: one prefill, n branches diverge by a sampled first step, then all decode greedily in one batch.
    let forked: Vec<Vec<_>> = block(async {
        let mut s = engine.open_tokens(prompt.clone(), 7).await?;
        let branches = s.fork(s.root(), n).await?;
        s.extend(&branches, &first).await?;
        s.extend(&branches, &rest).await?;
        let mut out = Vec::new();
        for b in branches {
            out.push(s.tokens(b).await?);
        }
        Ok::<_, GenError>(out)
    })
    .unwrap();
    let distinct: std::collections::HashSet<_> = forked.iter().map(|t| t[prompt.len()..prompt.len() + 3].to_vec()).collect();
    assert!(distinct.len() > 1, "sampled first steps did not diverge");
    // Independent: each branch's prompt + first step prefilled from scratch, then greedy alone.
    for tokens in &forked {
        let start = tokens[..prompt.len() + 3].to_vec();
        let alone = block(async {
            let mut s = engine.open_tokens(start, 0).await?;
            let root = s.root();
            s.extend(&[root], &rest).await?;
            s.tokens(root).await
        })
        .unwrap();
        assert_eq!(&alone, tokens, "forked and independent greedy continuations differ");
    }
}

#[test]
fn rollback_and_redecode_reproduce_the_same_tokens() {
    let engine = smol(uncached());
    let prompt = engine.tokenize(&engine.render(&question()).unwrap());
    let step = |n: u32| StepParams { sampling: greedy(n), delimiter: None, max_step_tokens: n, max_total_tokens: 64 };
    block(async {
        let mut s = engine.open_tokens(prompt.clone(), 3).await?;
        let root = s.root();
        let a = s.extend(&[root], &step(20)).await?;
        let full = s.tokens(root).await?;
        assert_eq!(full.len(), prompt.len() + a[0].n_tokens);
        s.rollback(root, 5).await?;
        assert_eq!(s.tokens(root).await?, full[..prompt.len() + 5].to_vec());
        let before = s.usage();
        let b = s.extend(&[root], &step(15)).await?;
        assert_eq!(s.tokens(root).await?, full);
        assert_eq!(b[0].n_tokens, 15);
        // Only the one rolled-back position whose logits were needed is recomputed.
        assert_eq!(s.usage().prompt_computed - before.prompt_computed, 1);
        Ok::<_, GenError>(())
    })
    .unwrap();
}

#[test]
fn step_delimiter_ends_steps_and_is_reported() {
    let engine = smol(uncached());
    let params = StepParams { sampling: greedy(64), delimiter: Some("\n".into()), max_step_tokens: 64, max_total_tokens: 128 };
    let steps = block(async {
        let mut s = engine.open(&question(), 1).await?;
        let root = s.root();
        let mut steps = Vec::new();
        for _ in 0..3 {
            let st = s.extend(&[root], &params).await?.remove(0);
            let done = st.is_final();
            steps.push(st);
            if done {
                break;
            }
        }
        Ok::<_, GenError>(steps)
    })
    .unwrap();
    for st in &steps {
        if st.finish == FinishReason::StepEnd {
            assert!(st.text.contains('\n'), "step {:?} ended without its delimiter", st.text);
        }
    }
    assert!(steps.iter().any(|s| s.finish == FinishReason::StepEnd), "no step ended on the delimiter: {steps:?}");
}

#[test]
fn stop_strings_and_max_tokens_end_samples() {
    let engine = smol(uncached());
    let p = SamplingParams { stop: vec!["apples".into()], ..greedy(64) };
    let got = block(async { engine.sample(req(1, p)).await?.collect().await }).unwrap();
    let s = &got.samples[0];
    if s.finish == FinishReason::Stop("apples".into()) {
        assert!(!s.text.contains("apples"), "stop string left in text: {:?}", s.text);
    } else {
        assert!(!s.text.contains("apples"));
    }
    let got = block(async { engine.sample(req(3, sampled(5, 7))).await?.collect().await }).unwrap();
    for s in &got.samples {
        assert!(s.n_tokens <= 7);
        if s.n_tokens == 7 {
            assert_eq!(s.finish, FinishReason::Length);
        }
    }
}

#[test]
fn token_confidence_is_reported_and_a_confidence_stop_ends_samples_at_one_window() {
    let engine = smol(uncached());
    let vocab = 49_152f32;
    // Greedy picks the top token, so its -logprob can be no more than the mean over the top 20.
    let p = SamplingParams { token_stats_k: 20, ..greedy(24) };
    let got = block(async { engine.sample(req(1, p)).await?.collect().await }).unwrap();
    let s = &got.samples[0];
    assert_eq!(s.token_stats.len(), s.token_logprobs.len(), "one entry per generated token");
    for (st, lp) in s.token_stats.iter().zip(&s.token_logprobs) {
        assert!(st.confidence.is_finite() && st.confidence + 1e-4 >= -lp, "{st:?} vs chosen logprob {lp}");
        assert!(st.entropy >= 0.0 && st.entropy <= vocab.ln() + 1e-3, "{st:?}");
    }
    // Without the option nothing is computed or sent.
    let plain = block(async { engine.sample(req(1, greedy(8))).await?.collect().await }).unwrap();
    assert!(plain.samples[0].token_stats.is_empty());

    // A threshold no group can reach ends every sample after exactly one window;
    // one no group can miss ends none. The tokens are counted either way.
    let stop = |threshold| SamplingParams {
        token_stats_k: 20,
        confidence_stop: Some(ponder_core::ConfidenceStop { window: 4, threshold }),
        ..sampled(9, 24)
    };
    let got = block(async { engine.sample(req(3, stop(1e9))).await?.collect().await }).unwrap();
    for s in &got.samples {
        assert!(s.finish == FinishReason::LowConfidence || (s.finish == FinishReason::Eos && s.n_tokens < 4), "{s:?}");
        assert!(s.n_tokens <= 4 && s.token_stats.len() == s.n_tokens);
    }
    let tokens: u64 = got.samples.iter().map(|s| s.n_tokens as u64).sum();
    assert_eq!(got.usage.completion, tokens);
    // A stopped sample's tokens were generated for nothing (issue 14).
    let stopped: u64 = got.samples.iter().filter(|s| s.finish == FinishReason::LowConfidence).map(|s| s.n_tokens as u64).sum();
    assert_eq!(got.usage.dropped, stopped);
    let got = block(async { engine.sample(req(3, stop(-1.0))).await?.collect().await }).unwrap();
    assert!(got.samples.iter().all(|s| s.finish != FinishReason::LowConfidence));
    assert_eq!(got.usage.dropped, 0);
    // A stop without the statistics it reads is refused.
    let bad = SamplingParams { token_stats_k: 0, ..stop(1.0) };
    let err = block(async { engine.sample(req(1, bad)).await.map(|_| ()) }).unwrap_err();
    assert!(err.to_string().contains("token_stats_k"), "{err}");
}

#[test]
fn cancelling_frees_every_sequence() {
    let engine = smol(uncached());
    block(async {
        let stream = engine.sample(req(8, SamplingParams { ignore_eos: true, ..sampled(3, 200) })).await?;
        stream.cancel();
        let usage = stream.finish().await?;
        assert!(usage.completion < 8 * 200, "cancelled request still generated everything: {usage:?}");
        // A dropped stream is cancelled too.
        let stream = engine.sample(req(8, SamplingParams { ignore_eos: true, ..sampled(4, 200) })).await?;
        drop(stream);
        // Sessions free their branches when dropped.
        let mut s = engine.open(&question(), 1).await?;
        let root = s.root();
        s.fork(root, 3).await?;
        drop(s);
        for _ in 0..100 {
            let st = engine.stats().await?;
            if st.live_seqs == 0 && st.jobs == 0 && st.sessions == 0 {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("sequences leaked: {:?}", engine.stats().await?);
    })
    .map_err(|e: GenError| e)
    .unwrap();
}

#[test]
fn concurrent_requests_share_the_engine() {
    let engine = smol(uncached());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let results = rt.block_on(async {
        let a = engine.clone();
        let b = engine.clone();
        let ha = tokio::spawn(async move { a.sample(req(4, sampled(1, 16))).await?.collect().await });
        let hb = tokio::spawn(async move { b.sample(req(4, sampled(2, 16))).await?.collect().await });
        (ha.await.unwrap(), hb.await.unwrap())
    });
    assert_eq!(results.0.unwrap().samples.len(), 4);
    assert_eq!(results.1.unwrap().samples.len(), 4);
}

#[test]
fn bad_requests_are_errors_not_panics() {
    let engine = smol(EngineConfig { n_ctx: 512, ..uncached() });
    let long = vec![Message::user("apple ".repeat(2000))];
    let err = block(engine.sample(SampleRequest { messages: long, n: 1, params: greedy(4), first_index: 0 })).err().unwrap();
    assert!(matches!(err, GenError::PromptTooLong { .. }), "{err}");
    let err = block(engine.sample(req(0, greedy(4)))).err().unwrap();
    assert!(err.to_string().contains("n must be at least 1"), "{err}");
    let err = block(engine.sample(req(1, SamplingParams { temperature: -1.0, ..greedy(4) }))).err().unwrap();
    assert!(err.to_string().contains("temperature"), "{err}");
    let err = block(engine.sample(SampleRequest { messages: vec![], n: 1, params: greedy(4), first_index: 0 })).err().unwrap();
    assert!(err.to_string().contains("messages must not be empty"), "{err}");
    let err = block(async {
        let mut s = engine.open(&question(), 0).await?;
        s.extend(&[99], &StepParams::default()).await
    })
    .err()
    .unwrap();
    assert_eq!(err, GenError::UnknownBranch(99));
}

#[test]
fn missing_and_corrupt_model_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.gguf");
    let err = Engine::load(&missing, EngineConfig::default()).err().unwrap();
    assert!(err.to_string().contains("does not exist"), "{err}");
    let corrupt = dir.path().join("bad.gguf");
    std::fs::write(&corrupt, b"GGUF\x03\x00\x00\x00 this is not a model").unwrap();
    let err = Engine::load(&corrupt, EngineConfig::default()).err().unwrap();
    assert!(err.to_string().contains("could not load"), "{err}");
}

#[test]
fn smollm2_uses_its_chat_template() {
    let engine = smol(uncached());
    assert!(engine.format().has_template());
    let text = engine.render(&question()).unwrap();
    assert!(text.contains("<|im_start|>user\n") && text.ends_with("<|im_start|>assistant\n"), "{text}");
}

#[test]
fn gemma_base_model_takes_plain_prompts() {
    let engine = Engine::load(model_path("gemma3-270m"), uncached()).expect("Gemma-3-270M loads");
    assert!(!engine.format().has_template(), "the base model has no chat template");
    let messages = vec![Message::user("Question: What is 2 + 3?\nAnswer:")];
    assert_eq!(engine.render(&messages).unwrap(), "Question: What is 2 + 3?\nAnswer:");
    let prompt_len = engine.tokenize(&engine.render(&messages).unwrap()).len() as u64;
    let got = block(async {
        engine.sample(SampleRequest { messages, n: 4, params: sampled(11, 12), first_index: 0 }).await?.collect().await
    })
    .unwrap();
    assert_eq!(got.samples.len(), 4);
    assert!(got.samples.iter().any(|s| !s.text.trim().is_empty()), "{:?}", got.samples);
    assert_eq!(got.usage.prompt_computed, prompt_len);
}

#[test]
fn requests_beyond_the_kv_cache_wait_instead_of_failing() {
    let engine = smol(EngineConfig { n_ctx: 1024, ..uncached() });
    let too_big = SamplingParams { ignore_eos: true, ..sampled(1, 400) };
    let err = block(engine.sample(req(4, too_big))).err().unwrap();
    assert!(err.to_string().contains("KV cells"), "{err}");
    // Each request needs about 60 + 4 * 100 cells: at most two fit at once; all complete.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let results: Vec<_> = rt.block_on(async {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let e = engine.clone();
                let p = SamplingParams { ignore_eos: true, ..sampled(i, 100) };
                tokio::spawn(async move { e.sample(req(4, p)).await?.collect().await })
            })
            .collect();
        futures::future::join_all(handles).await
    });
    for r in results {
        let got = r.unwrap().unwrap();
        assert_eq!(got.samples.len(), 4, "failures: {:?}", got.failures);
        assert!(got.samples.iter().all(|s| s.n_tokens == 100));
    }
}
