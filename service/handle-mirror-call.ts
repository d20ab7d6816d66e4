// A mirror call: answered from the record of its test call, never from an upstream. This module
// is given the store and nothing that can open a connection (no forwarder, no dispatcher), and it
// only ever reads records (`lookup` and `lookupNow` count and read, `wait` reads) — it never
// `put`s or `claim`s.
import { sendError, sendRecord, storeFailed, declaredBodyTooLarge, discardRest, hasBody, nowSeconds, type Call, type HandlerDeps, type Lookup, type StoredResponse } from "./call.ts";

export interface MirrorDeps extends HandlerDeps {
  readonly waitMs: number;
}

export function createMirrorHandler(deps: MirrorDeps): (call: Call) => Promise<void> | void {
  const { store, metrics, log, debug, ttlMs, waitMs, maxBodyBytes } = deps;
  const lookupNow = store.lookupNow?.bind(store);

  function answerHit(call: Call, key: string, rec: StoredResponse): void {
    metrics.observeWait(0);
    metrics.call("mirror", "hit");
    if (debug) log.debug({ reqId: call.requestId, stack: "mirror", key, outcome: "hit", status: rec.status }, "call");
    sendRecord(call.res, rec, "hit");
  }

  async function lookupThenAnswer(call: Call): Promise<void> {
    let found: Lookup;
    try {
      found = await store.lookup("mirror", call.tuple, ttlMs);
    } catch (err) {
      // As for a hit (below): an answer sent while the body still arrives could be lost.
      if (!call.req.complete) await discardRest(call.req);
      return storeFailed(deps, call, "get", err);
    }
    if (found.record === undefined) return waitThenAnswer(call, found.key);
    // The body is never used, but an answer sent while it is still arriving would be lost to
    // the reset that closing a socket with unread input causes (see discardRest).
    if (!call.req.complete) await discardRest(call.req);
    answerHit(call, found.key, found.record);
  }

  // Not recorded yet: the test call is in flight or has not arrived. Wait, but stop waiting
  // when our client goes away.
  async function waitThenAnswer(call: Call, key: string): Promise<void> {
    const res = call.res;
    const ac = new AbortController();
    const onClose = () => {
      if (!res.writableEnded) ac.abort();
    };
    res.once("close", onClose);
    const t0 = nowSeconds();
    let rec: StoredResponse | undefined;
    try {
      rec = await store.wait(key, waitMs, ac.signal);
    } catch (err) {
      if (!call.req.complete) await discardRest(call.req);
      return storeFailed(deps, call, "wait", err);
    } finally {
      res.off("close", onClose);
    }
    metrics.observeWait(nowSeconds() - t0);
    if (!ac.signal.aborted && !call.req.complete) await discardRest(call.req);
    if (ac.signal.aborted) {
      metrics.call("mirror", "client_closed");
      if (debug) log.debug({ reqId: call.requestId, stack: "mirror", key, outcome: "client_closed" }, "call");
      return;
    }
    if (rec !== undefined) {
      metrics.call("mirror", "hit");
      if (debug) log.debug({ reqId: call.requestId, stack: "mirror", key, outcome: "hit", status: rec.status, waitedMs: Math.round((nowSeconds() - t0) * 1000) }, "call");
      return sendRecord(res, rec, "hit");
    }
    metrics.call("mirror", "miss");
    log.warn({ reqId: call.requestId, stack: "mirror", method: call.method, authority: call.authority, path: call.path, n: key.slice(key.lastIndexOf("\n") + 1), waitMs }, "mirror call missed: no test call recorded within the wait bound");
    sendError(res, "MIRROR_CACHE_MISS", `no test-stack call ${call.method} ${call.authority}${call.path} with request id ${JSON.stringify(call.requestId)} was recorded within ${waitMs} ms`);
  }

  return function mirrorCall(call: Call): Promise<void> | void {
    if (declaredBodyTooLarge(call, maxBodyBytes)) {
      metrics.call("mirror", "body_too_large");
      return sendError(call.res, "BODY_TOO_LARGE", `request body is over MIRROR_CACHE_MAX_BODY_BYTES (${maxBodyBytes} bytes)`, true);
    }
    // The common case, answered within the request event: a store that reads synchronously
    // (memory) and a call without a body (a GET's). No body is arriving, so there is nothing to
    // drain before answering; a call with one takes the path that drains it first.
    if (lookupNow !== undefined && !hasBody(call)) {
      let found: Lookup;
      try {
        found = lookupNow("mirror", call.tuple, ttlMs);
      } catch (err) {
        return storeFailed(deps, call, "get", err);
      }
      if (found.record === undefined) return waitThenAnswer(call, found.key);
      return answerHit(call, found.key, found.record);
    }
    return lookupThenAnswer(call);
  };
}
