//! ponder-engine: in-process inference on llama.cpp.
//!
//! [`Engine::load`] starts one actor thread that owns the llama.cpp context; every
//! [`Engine`] clone talks to it through a channel, so many requests share one loaded model
//! and their sequences join the same batches. A prompt is prefilled once and its samples
//! fork from it, sharing KV cells. The model itself is `Sync` and stays outside the actor
//! for tokenizing and templating on the caller's thread.

mod actor;
pub mod chat;
pub mod judge;
pub mod prm;
pub mod raw;
pub mod sampler;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use async_trait::async_trait;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use ponder_core::{
    BranchId, CancelToken, GenError, Generator, GeneratorInfo, Message, SampleRequest, SampleStream, Step, StepParams,
    StepSession, Usage,
};
use tokio::sync::{mpsc, oneshot};

pub use crate::actor::Stats;
use crate::actor::{Actor, Command, Limits, Llama, SampleJob, SessionId, SpanSetup};
pub use crate::chat::ChatFormat;
pub use llama_cpp_2::token::LlamaToken;
use ponder_core::reasoning::{Thinking, ThinkingMarkers};

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// KV-cache cells shared by all sequences (unified cache).
    pub n_ctx: u32,
    /// Most tokens decoded in one batch.
    pub n_batch: u32,
    /// Most tokens llama.cpp computes in one pass of a batch (its micro-batch).
    pub n_ubatch: u32,
    /// Sequence slots (llama.cpp allows at most 256).
    pub n_seq_max: u32,
    pub n_threads: i32,
    /// Prompts kept in the prefix cache for reuse by later requests.
    pub prefix_cache_entries: usize,
    /// One KV cache shared by all sequences (forks share cells), rather than a stream of
    /// `n_ctx / n_seq_max` cells per sequence, where attention reads only a sequence's own
    /// cells. The engine needs the shared cache; the raw yardstick can measure both.
    pub kv_unified: bool,
    /// Most tokens one decode call holds when it feeds several sequences; 0 lifts the cap.
    /// Below 64, where llama.cpp's CPU flash attention turns dense over every cell of the
    /// unified cache (`ponder bench engine --uncapped` measures what it buys).
    pub shared_rows: u32,
}

impl EngineConfig {
    /// llama.cpp context parameters: one unified KV cache, so forked sequences share cells.
    pub(crate) fn context_params(&self) -> LlamaContextParams {
        LlamaContextParams::default()
            .with_n_ctx(std::num::NonZeroU32::new(self.n_ctx))
            .with_n_batch(self.n_batch)
            .with_n_ubatch(self.n_ubatch.min(self.n_batch))
            .with_n_seq_max(self.n_seq_max)
            .with_kv_unified(self.kv_unified)
            .with_n_threads(self.n_threads)
            .with_n_threads_batch(self.n_threads)
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as i32;
        Self { n_ctx: 16384, n_batch: 512, n_ubatch: 512, n_seq_max: 256, n_threads: threads, prefix_cache_entries: 8, kv_unified: true, shared_rows: 63 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("model file {0} does not exist")]
    Missing(PathBuf),
    #[error("llama.cpp could not load {path}: {reason} (is it a valid GGUF model?)")]
    Load { path: PathBuf, reason: String },
    #[error("llama.cpp could not create a context: {0}")]
    Context(String),
    #[error("llama.cpp backend failed to start: {0}")]
    Backend(String),
}

/// llama.cpp's backend may be initialised once per process.
fn backend() -> Result<&'static LlamaBackend, EngineError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::Backend(e.clone()))
}

/// Loads a GGUF model (shared by [`Engine`] and the raw benchmark path).
pub fn load_model(path: &Path) -> Result<LlamaModel, EngineError> {
    if !path.is_file() {
        return Err(EngineError::Missing(path.to_path_buf()));
    }
    LlamaModel::load_from_file(backend()?, path, &LlamaModelParams::default())
        .map_err(|e| EngineError::Load { path: path.to_path_buf(), reason: e.to_string() })
}

struct Inner {
    tx: mpsc::UnboundedSender<Command>,
    model: Arc<LlamaModel>,
    format: ChatFormat,
    info: GeneratorInfo,
    n_ctx_seq: usize,
    /// KV cells shared by all sequences.
    n_ctx: usize,
    n_seq_max: usize,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the actor once its work is done.
        let (tx, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(t) = self.thread.lock().ok().and_then(|mut g| g.take()) {
            let _ = t.join();
        }
    }
}

/// A loaded model and its actor. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
    /// Sessions opened through this handle re-prefill every branch at every step.
    reprefill: bool,
}

impl Engine {
    pub fn load(path: impl AsRef<Path>, config: EngineConfig) -> Result<Engine, EngineError> {
        let path = path.as_ref();
        let model = Arc::new(load_model(path)?);
        let n_ctx_train = model.n_ctx_train() as usize;
        let format = match model.meta_val_str("tokenizer.chat_template") {
            Ok(source) => {
                let vocab = model.vocab();
                let text = |t: LlamaToken| String::from_utf8_lossy(&vocab.token_to_piece(t, true, None)).into_owned();
                ChatFormat::template(source, text(vocab.bos()), text(vocab.eos()))
            }
            Err(_) => ChatFormat::Plain,
        };
        let name = path.file_name().map_or_else(|| path.display().to_string(), |f| f.to_string_lossy().into_owned());
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let actor_model = model.clone();
        let cfg = config.clone();
        let thread = std::thread::Builder::new()
            .name("ponder-engine".into())
            .spawn(move || {
                let backend = match backend() {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let ctx = match actor_model.new_context(backend, cfg.context_params()) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(EngineError::Context(e.to_string())));
                        return;
                    }
                };
                let n_ctx = ctx.n_ctx() as usize;
                let limits = Limits {
                    n_batch: cfg.n_batch as usize,
                    shared_rows: cfg.shared_rows as usize,
                    n_seq_max: cfg.n_seq_max as usize,
                    n_ctx_seq: n_ctx.min(n_ctx_train),
                    n_ctx,
                    cache_entries: cfg.prefix_cache_entries,
                };
                let _ = ready_tx.send(Ok((limits.n_ctx_seq, n_ctx)));
                let backend = Llama::new(&actor_model, ctx, limits.n_batch, limits.n_seq_max);
                Actor::new(backend, limits).run(rx);
            })
            .map_err(|e| EngineError::Backend(e.to_string()))?;
        let (n_ctx_seq, n_ctx) =
            ready_rx.recv().map_err(|_| EngineError::Backend("engine thread died while starting".into()))??;
        let info = GeneratorInfo { backend: "engine".into(), model: name, context_len: n_ctx_seq, n_params: model.n_params() };
        Ok(Engine {
            inner: Arc::new(Inner {
                tx,
                model,
                format,
                info,
                n_ctx_seq,
                n_ctx,
                n_seq_max: config.n_seq_max as usize,
                thread: Mutex::new(Some(thread)),
            }),
            reprefill: false,
        })
    }

    pub fn format(&self) -> &ChatFormat {
        &self.inner.format
    }

    /// The prompt text for a conversation.
    pub fn render(&self, messages: &[Message]) -> Result<String, GenError> {
        if messages.is_empty() {
            return Err(GenError::InvalidRequest("messages must not be empty".into()));
        }
        self.inner.format.render(messages).map_err(GenError::InvalidRequest)
    }

    /// Tokens of prompt text, with the model's special tokens parsed.
    pub fn tokenize(&self, text: &str) -> Vec<LlamaToken> {
        self.inner.model.vocab().tokenize(text.as_bytes(), true, true)
    }

    pub fn model(&self) -> &LlamaModel {
        &self.inner.model
    }

    /// The reasoning markers the model's chat template writes (`<think>`/`</think>`), if any.
    pub fn thinking_markers(&self) -> Option<ThinkingMarkers> {
        match &self.inner.format {
            ChatFormat::Template { source, .. } => ThinkingMarkers::detect(source),
            ChatFormat::Plain => None,
        }
    }

    /// How the actor follows a sample's reasoning spans after `prompt` (rendered text).
    fn span_setup(&self, thinking: &Thinking, prompt: &str) -> SpanSetup {
        let forced = thinking.forced_text();
        SpanSetup {
            markers: thinking.markers.clone(),
            starts_inside: thinking.markers.ends_inside(prompt),
            budget: thinking.budget.map(|t| t as usize),
            // Special tokens parsed: a model whose markers are special tokens gets them.
            forced_tokens: self
                .inner
                .model
                .vocab()
                .tokenize(forced.as_bytes(), false, true),
            forced_bytes: forced.into_bytes(),
        }
    }

    fn prompt_tokens(&self, messages: &[Message]) -> Result<Vec<LlamaToken>, GenError> {
        self.prompt_tokens_of(&self.render(messages)?)
    }

    fn prompt_tokens_of(&self, text: &str) -> Result<Vec<LlamaToken>, GenError> {
        let tokens = self.tokenize(text);
        if tokens.is_empty() {
            return Err(GenError::InvalidRequest("the prompt is empty".into()));
        }
        if tokens.len() >= self.inner.n_ctx_seq {
            return Err(GenError::PromptTooLong { prompt_tokens: tokens.len(), context: self.inner.n_ctx_seq });
        }
        Ok(tokens)
    }

    /// Opens a step-wise session on raw prompt tokens (no chat template).
    pub async fn open_tokens(&self, prompt: Vec<LlamaToken>, seed: u64) -> Result<EngineSession, GenError> {
        if prompt.is_empty() {
            return Err(GenError::InvalidRequest("the prompt is empty".into()));
        }
        if prompt.len() >= self.inner.n_ctx_seq {
            return Err(GenError::PromptTooLong { prompt_tokens: prompt.len(), context: self.inner.n_ctx_seq });
        }
        let (reply, rx) = oneshot::channel();
        self.send(Command::Open { prompt, seed, reprefill: self.reprefill, reply })?;
        let (id, usage) = answer(rx).await?;
        Ok(EngineSession { engine: self.clone(), id, usage })
    }

    /// A handle on the same model whose step sessions share nothing: no prefix cache, no
    /// KV sharing between forks, every branch's whole text fed again at every step. This
    /// is what search costs through a stateless HTTP server; `ponder bench search`
    /// compares it with the normal engine in one run.
    pub fn reprefilling(&self) -> Engine {
        Engine { inner: self.inner.clone(), reprefill: true }
    }

    /// The first token of `text` (no special tokens added), for next-token probes.
    pub fn first_token(&self, text: &str) -> Result<LlamaToken, GenError> {
        self.inner
            .model
            .vocab()
            .tokenize(text.as_bytes(), false, false)
            .first()
            .copied()
            .ok_or_else(|| GenError::InvalidRequest(format!("{text:?} has no tokens")))
    }

    /// For each token sequence, the log-probabilities of `candidates` as its next token,
    /// all sequences in one batch. Sequences reuse the prefix cache and then join it, so a
    /// reward model scoring partial solutions step after step computes only the new steps.
    pub async fn score_next(
        &self,
        sequences: Vec<Vec<LlamaToken>>,
        candidates: Vec<LlamaToken>,
    ) -> Result<(Vec<Vec<f32>>, Usage), GenError> {
        if sequences.len() + 1 > self.inner.n_seq_max {
            return Err(GenError::InvalidRequest(format!(
                "{} sequences exceed this engine's {} parallel sequences",
                sequences.len(),
                self.inner.n_seq_max - 1
            )));
        }
        let (reply, rx) = oneshot::channel();
        self.send(Command::Score { sequences, candidates, reply })?;
        answer(rx).await
    }

    /// What the actor holds right now.
    pub async fn stats(&self) -> Result<Stats, GenError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Stats { reply })?;
        rx.await.map_err(|_| GenError::Backend("the engine dropped the request".into()))
    }

    fn send(&self, cmd: Command) -> Result<(), GenError> {
        self.inner.tx.send(cmd).map_err(|_| GenError::Backend("the engine has stopped".into()))
    }
}

async fn answer<T>(rx: oneshot::Receiver<Result<T, GenError>>) -> Result<T, GenError> {
    rx.await.map_err(|_| GenError::Backend("the engine dropped the request".into()))?
}

#[async_trait]
impl Generator for Engine {
    fn info(&self) -> GeneratorInfo {
        self.inner.info.clone()
    }

    async fn sample(&self, req: SampleRequest) -> Result<SampleStream, GenError> {
        req.params.validate()?;
        if req.n == 0 {
            return Err(GenError::InvalidRequest("n must be at least 1, got 0".into()));
        }
        if req.n + 1 > self.inner.n_seq_max {
            return Err(GenError::InvalidRequest(format!(
                "n = {} exceeds this engine's {} parallel sequences",
                req.n,
                self.inner.n_seq_max - 1
            )));
        }
        let text = self.render(&req.messages)?;
        let prompt = self.prompt_tokens_of(&text)?;
        let spans = req
            .params
            .thinking
            .as_ref()
            .map(|t| Arc::new(self.span_setup(t, &text)));
        let (events, rx) = mpsc::unbounded_channel();
        let cancel = CancelToken::default();
        let job = SampleJob {
            prompt,
            n: req.n,
            first_index: req.first_index,
            params: req.params,
            cancel: cancel.clone(),
            events,
            spans,
        };
        let need = actor::kv_need(
            job.prompt.len(),
            req.n,
            job.max_added(),
            self.inner.n_ctx_seq,
        );
        if need > self.inner.n_ctx {
            return Err(GenError::InvalidRequest(format!(
                "{} samples of up to {} tokens after a {}-token prompt need {need} KV cells but the engine has {}: \
                 lower n or max_tokens, or raise the context (--ctx)",
                req.n,
                job.max_added(),
                job.prompt.len(),
                self.inner.n_ctx
            )));
        }
        self.send(Command::Sample(Box::new(job)))?;
        Ok(SampleStream::new(tokio_stream(rx), cancel))
    }

    async fn open(&self, messages: &[Message], seed: u64) -> Result<Box<dyn StepSession>, GenError> {
        let prompt = self.prompt_tokens(messages)?;
        Ok(Box::new(self.open_tokens(prompt, seed).await?))
    }
}

fn tokio_stream<T: Send + 'static>(mut rx: mpsc::UnboundedReceiver<T>) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A step-wise session on the engine; dropping it frees its sequences.
pub struct EngineSession {
    engine: Engine,
    id: SessionId,
    usage: Usage,
}

impl EngineSession {
    async fn call<T>(&mut self, make: impl FnOnce(oneshot::Sender<Result<(T, Usage), GenError>>) -> Command) -> Result<T, GenError> {
        let (reply, rx) = oneshot::channel();
        self.engine.send(make(reply))?;
        let (value, usage) = answer(rx).await?;
        self.usage = usage;
        Ok(value)
    }
}

impl EngineSession {
    /// All tokens of a branch, prompt included (engine-specific).
    pub async fn tokens(&mut self, branch: BranchId) -> Result<Vec<LlamaToken>, GenError> {
        let session = self.id;
        self.call(|reply| Command::Tokens { session, branch, reply }).await
    }
}

#[async_trait]
impl StepSession for EngineSession {
    fn root(&self) -> BranchId {
        0
    }

    async fn fork(&mut self, branch: BranchId, n: usize) -> Result<Vec<BranchId>, GenError> {
        let session = self.id;
        self.call(|reply| Command::Fork { session, branch, n, reply }).await
    }

    async fn extend(&mut self, branches: &[BranchId], params: &StepParams) -> Result<Vec<Step>, GenError> {
        let (session, branches, params) = (self.id, branches.to_vec(), params.clone());
        self.call(|reply| Command::Extend { session, branches, params, reply }).await
    }

    async fn rollback(&mut self, branch: BranchId, n_tokens: usize) -> Result<(), GenError> {
        let session = self.id;
        self.call(|reply| Command::Rollback { session, branch, n_tokens, reply }).await
    }

    async fn release(&mut self, branches: &[BranchId]) -> Result<(), GenError> {
        let (session, branches) = (self.id, branches.to_vec());
        self.call(|reply| Command::Release { session, branches, reply }).await
    }

    fn usage(&self) -> Usage {
        self.usage
    }

    async fn append(&mut self, branch: BranchId, text: &str) -> Result<(), GenError> {
        let tokens = self.engine.inner.model.vocab().tokenize(text.as_bytes(), false, true);
        if tokens.is_empty() {
            return Ok(());
        }
        let session = self.id;
        self.call(|reply| Command::Append { session, branch, tokens, reply }).await
    }

    async fn probe(
        &mut self,
        branches: &[BranchId],
        suffix: &str,
        candidates: &[String],
    ) -> Result<(Vec<Vec<f32>>, Usage), GenError> {
        let engine = &self.engine;
        // Special tokens parse, so a suffix may close the turn in the model's chat format.
        let suffix = engine.inner.model.vocab().tokenize(suffix.as_bytes(), false, true);
        let candidates = candidates.iter().map(|c| engine.first_token(c)).collect::<Result<Vec<_>, _>>()?;
        let (session, branches) = (self.id, branches.to_vec());
        let (reply, rx) = oneshot::channel();
        engine.send(Command::Probe { session, branches, suffix, candidates, reply })?;
        answer(rx).await
    }
}

impl Drop for EngineSession {
    fn drop(&mut self) {
        let _ = self.engine.send(Command::Close { session: self.id });
    }
}
