//! CDN purges handed to a JS hook (`cdn.purge`): the core plans the batches, the hook sends them,
//! and answers each with `purgeSettled`.

use super::*;

pub(super) type PurgeWaiters = Arc<
    parking_lot::Mutex<std::collections::HashMap<u64, tokio::sync::oneshot::Sender<std::result::Result<(), String>>>>,
>;
/// A planned purge as the JS hook receives it: `(id, paths, files, wildcards, cost, widened)`.
type PurgeArgs = FnArgs<(f64, Vec<String>, f64, f64, f64, bool)>;
type PurgeHookFn = ThreadsafeFunction<PurgeArgs, (), PurgeArgs, Status, false, true>;

#[napi]
impl NativeCache {
    /// Sends every planned CDN purge to `hook(id, paths, files, wildcards, cost, widened)` (the
    /// JS face calls the app's `cdn.purge` and answers with `purgeSettled`). Throws
    /// `FLEETCACHE_CONFIG` when CloudFront (or a hook) is set already.
    #[napi(
        catch_unwind,
        ts_args_type = "hook: (id: number, paths: string[], files: number, wildcards: number, cost: number, widened: boolean) => void"
    )]
    pub fn set_purge_hook(&self, env: &Env, hook: PurgeHookFn) -> Result<()> {
        let waiters = self.purge_waiters.clone();
        let hook = Arc::new(hook);
        let f: crate::cdn::purger::HookFn = Arc::new(move |b: crate::cdn::Batch| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            waiters.lock().insert(b.id, tx);
            let args: PurgeArgs = (b.id as f64, b.paths, b.files as f64, b.wildcards as f64, b.cost, b.widened).into();
            let status = hook.call(args, ThreadsafeFunctionCallMode::NonBlocking);
            Box::pin(async move {
                if status != Status::Ok {
                    return Err(format!("the hook could not be called ({status:?})"));
                }
                rx.await.unwrap_or_else(|_| Err("the hook's answer was lost".into()))
            })
        });
        self.core
            .start_purger(crate::cdn::purger::Target::Hook(f), |fut| {
                napi::bindgen_prelude::spawn(fut);
            })
            .map_err(|e| coded(env, e))
    }

    /// Settles the hook's batch `id`: `error` is its failure (the batch comes back after a
    /// backoff), `null` its success.
    #[napi]
    pub fn purge_settled(&self, id: f64, error: Option<String>) {
        if let Some(tx) = self.purge_waiters.lock().remove(&(id as u64)) {
            let _ = tx.send(error.map_or(Ok(()), Err));
        }
    }
}
