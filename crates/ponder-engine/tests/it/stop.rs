//! Stopping one sample mid-generation (issue 14) on SmolLM2: the others finish as if
//! nothing happened, and the stopped sample's tokens are counted as dropped.

use super::*;

#[test]
fn stopping_one_of_four_samples_midway_leaves_the_others_unchanged() {
    let engine = smol(uncached());
    // Greedy and short: llama.cpp's results move in the last bits with the batch's rows and
    // the cells' places in the KV cache (a stopped sample frees some), which a temperature
    // draw, or a long greedy run, can amplify into another token; 32 greedy tokens do not
    // move (as in `greedy_forks_equal_independent_prefills`).
    let params = SamplingParams { ignore_eos: true, ..greedy(32) };
    let reference = block(async { engine.sample(req(4, params.clone())).await?.collect().await }).unwrap();
    assert_eq!(reference.usage.dropped, 0);
    let full = &reference.samples[2];

    let (samples, usage) = block(async {
        let stream = engine.sample(req(4, params)).await?;
        // A clock: a 4-token request sent after ours decodes in the same steps, so once it
        // is done ours have at least 4 tokens each, and most of their 32 to go.
        engine.sample(req(1, greedy(4))).await?.collect().await?;
        stream.stop(2);
        stream.collect().await
    })
    .map(|c| (c.samples, c.usage))
    .unwrap();
    assert_eq!(samples.len(), 4, "the stopped sample arrives too");
    let stopped = &samples[2];
    assert_eq!(stopped.finish, FinishReason::Stopped);
    assert!(stopped.n_tokens >= 4 && stopped.n_tokens < 32, "stopped midway: {} of 32", stopped.n_tokens);
    assert!(full.text.starts_with(&stopped.text), "{:?} is not where {:?} was going", stopped.text, full.text);
    for s in samples.iter().filter(|s| s.index != 2) {
        let r = &reference.samples[s.index];
        assert_eq!((&s.text, s.n_tokens, &s.finish), (&r.text, r.n_tokens, &r.finish), "sample {}", s.index);
    }
    assert_eq!(usage.dropped, stopped.n_tokens as u64);
    assert_eq!(usage.completion, 3 * 32 + stopped.n_tokens as u64);
    assert_eq!(engine_stats_live(&engine), 0, "every sequence is freed");
}

#[test]
fn cancelled_samples_arrive_with_what_they_generated_and_count_as_dropped() {
    let engine = smol(uncached());
    let params = SamplingParams { ignore_eos: true, ..sampled(3, 400) };
    let (samples, usage) = block(async {
        let mut stream = engine.sample(req(3, params)).await?;
        // All three run to 400 tokens side by side: the first stop comes long before that.
        stream.stop(0);
        let first = stream.next().await.unwrap().map_err(|(_, e)| e)?;
        stream.cancel();
        let mut got = vec![first];
        while let Some(r) = stream.next().await {
            got.push(r.map_err(|(_, e)| e)?);
        }
        Ok::<_, GenError>((got, stream.finish().await?))
    })
    .unwrap();
    assert_eq!(samples[0].finish, FinishReason::Stopped);
    assert_eq!(samples.len(), 3);
    assert!(samples[1..].iter().all(|s| s.finish == FinishReason::Cancelled && s.n_tokens < 400), "{samples:?}");
    let generated: u64 = samples.iter().map(|s| s.n_tokens as u64).sum();
    assert_eq!((usage.completion, usage.dropped), (generated, generated));
    assert_eq!(engine_stats_live(&engine), 0);
}
