// A test call: counted, claimed (single-flight across replicas), forwarded to its real upstream,
// recorded, answered with `x-mirror-cache: pass`. An upstream failure is recorded too, so the
// mirror sees the same failure. A client that goes away mid-body leaves no record: the claim is
// released.
//
// A large answer with a declared length is streamed to the caller as it arrives (forward.ts,
// `AnswerStream`): the head (the record's headers, `x-mirror-cache: pass`, the declared
// Content-Length — what every replay of the record will carry) and the body so far once more
// than STREAM_AFTER_BYTES are in, then each chunk. The bytes that complete the body are written
// only after the record is stored, so a complete test answer still means a stored record. If
// the upstream fails after bytes were streamed (reset, body timeout), the failure is recorded
// (UPSTREAM_UNAVAILABLE / UPSTREAM_TIMEOUT: the mirror gets that 502/504 as `hit`) and the
// caller's answer is cut (its connection destroyed): it has a head and part of a body that can
// no longer be completed or replaced.
import type { ServerResponse } from "node:http";
import { OUTCOME, recordHead, sendError, sendRecord, storeFailed, declaredBodyTooLarge, discardRest, hasBody, nowSeconds, type Call, type HandlerDeps } from "./call.ts";
import { ERRORS } from "./errors.ts";
import { limitBody, upstreamRequestHeaders, type AnswerStream, type Forwarder } from "./forward.ts";
import type { Readable } from "node:stream";

export interface TestDeps extends HandlerDeps {
  readonly forwarder: Forwarder;
  readonly stackHeader: string;
  /** How long a claim holds, and how long a test call that lost its claim waits for the record. */
  readonly claimTtlMs: number;
}

/** The test call's answer as an AnswerStream. It declines (the answer is then taken whole) while
 * the caller's body is still arriving — an answer is only written once the request is read, see
 * `discardRest` — and when the caller is gone. Writes of one tick are corked into one. */
function answerStream(res: ServerResponse, requestRead: () => boolean): AnswerStream {
  return {
    start(status, headers, length) {
      if (res.destroyed || res.headersSent || !requestRead()) return false;
      res.writeHead(status, recordHead(headers, "pass", length));
      res.cork();
      process.nextTick(() => res.uncork());
      return true;
    },
    write(chunk) {
      // A caller gone mid-answer: the exchange goes on and is recorded (the upstream saw it).
      if (!res.destroyed) res.write(chunk);
    },
  };
}

function clientClosedError(): Error {
  return Object.assign(new Error("the client closed its connection before its request body was complete"), { code: "CLIENT_CLOSED" });
}

export function createTestHandler(deps: TestDeps): (call: Call) => Promise<void> {
  const { store, metrics, log, debug, ttlMs, maxBodyBytes, forwarder, stackHeader, claimTtlMs } = deps;

  async function release(call: Call, key: string): Promise<void> {
    try {
      await store.release(key);
    } catch (err) {
      metrics.storeError();
      log.warn({ reqId: call.requestId, key, err: (err as Error).message }, "releasing a claim failed");
    }
  }

  async function clientClosed(call: Call, key: string): Promise<void> {
    await release(call, key);
    metrics.call("test", "client_closed");
    log.warn({ reqId: call.requestId, stack: "test", origin: call.origin }, "client went away before its request body was sent; claim released, nothing recorded");
  }

  async function forwardAndRecord(call: Call, key: string): Promise<void> {
    const req = call.req;
    let body: Readable | null = null;
    if (hasBody(call)) {
      // Gone while the key was claimed: its 'close' has passed, nothing would end the body.
      if (req.destroyed && !req.complete) return clientClosed(call, key);
      if (req.headers["content-length"] !== undefined) body = req;
      else {
        // Chunked: the limiter sits between the client and undici. `pipe` does not pass the
        // client's abort on, so end the limiter ourselves when the request closes unfinished (the
        // forward then fails and the call is concluded as client_closed, below). Not `pipeline`:
        // it would destroy `req` (and with it the socket) when the limiter trips, and the caller
        // must still get its 413.
        const limiter = limitBody(maxBodyBytes);
        req.once("close", () => {
          if (!req.complete) limiter.destroy(clientClosedError());
        });
        body = req.pipe(limiter);
      }
    }
    const headers = upstreamRequestHeaders(req.rawHeaders, stackHeader, req.headers.connection);
    const stream = answerStream(call.res, () => body === null || req.complete);
    const t0 = nowSeconds();
    const fr = await forwarder.forward({ method: call.method, origin: call.origin, path: call.path, headers, body, stream });
    metrics.observeUpstream(nowSeconds() - t0);

    // The body was not read to its end (the forward failed before or while sending it): its rest
    // is read and discarded before the answer.
    const unread = body !== null && !req.complete;
    if (!fr.ok) {
      // Gone = its connection closed. Not `!req.complete`: a body over the limit, or one the
      // upstream never took (egress denied, refused), is still arriving from a caller who waits.
      const clientGone = call.res.destroyed;
      if (fr.code === "BODY_TOO_LARGE" || (clientGone && unread)) {
        // Nothing to record: the call itself was bad or never fully arrived.
        if (clientGone) return clientClosed(call, key);
        await release(call, key);
        metrics.call("test", "body_too_large");
        if (fr.streamed > 0) return void call.res.destroy(); // (not expected: streaming waits for the whole request)
        await discardRest(req);
        return sendError(call.res, "BODY_TOO_LARGE", fr.message);
      }
      if (fr.code === "EGRESS_DENIED") metrics.egressDenied();
      log.warn(
        { reqId: call.requestId, stack: "test", code: fr.code, origin: call.origin, path: call.path, err: fr.message, streamed: fr.streamed },
        fr.streamed > 0 ? "upstream failed mid-body; failure recorded, the streamed answer cut" : "upstream call failed; failure recorded",
      );
    }

    try {
      await store.put(key, fr.record, ttlMs);
    } catch (err) {
      // The upstream answered: the test call still gets it (never lose a test call because the
      // mirror machinery failed); only the mirror will miss.
      metrics.storeError();
      log.error({ reqId: call.requestId, key, err: (err as Error).message }, "recording failed; answering the test call anyway");
      store.release(key).catch(() => undefined);
    }
    const outcome = fr.ok ? "pass" : OUTCOME[fr.code];
    metrics.call("test", outcome);
    if (debug) log.debug({ reqId: call.requestId, stack: "test", key, outcome, status: fr.record.status }, "call");
    if (fr.streamed > 0) {
      // Head and part of the body are out: complete the answer with the rest of the recorded body,
      // or, after a failure, cut it (the mirror gets the recorded failure).
      if (fr.ok) call.res.end(fr.rest);
      else call.res.destroy();
      return;
    }
    if (unread) await discardRest(req);
    sendRecord(call.res, fr.record, fr.ok ? "pass" : (ERRORS[fr.code].cache ?? "pass"));
  }

  return async function testCall(call: Call): Promise<void> {
    if (declaredBodyTooLarge(call, maxBodyBytes)) {
      metrics.call("test", "body_too_large");
      return sendError(call.res, "BODY_TOO_LARGE", `request body is over MIRROR_CACHE_MAX_BODY_BYTES (${maxBodyBytes} bytes)`, true);
    }
    let key: string;
    let won: boolean;
    try {
      ({ key, won } = await store.begin(call.tuple, ttlMs, claimTtlMs));
    } catch (err) {
      return storeFailed(deps, call, "claim", err);
    }
    if (won) return forwardAndRecord(call, key);

    // Another caller (here or on another replica) forwards this key: answer with its record.
    try {
      const rec = await store.wait(key, claimTtlMs);
      if (rec !== undefined) {
        metrics.call("test", "pass");
        if (debug) log.debug({ reqId: call.requestId, stack: "test", key, outcome: "pass", shared: true }, "call");
        return sendRecord(call.res, rec, "pass");
      }
      // The holder vanished without recording (crashed replica): take over if we can.
      if (await store.claim(key, claimTtlMs)) return forwardAndRecord(call, key);
    } catch (err) {
      return storeFailed(deps, call, "wait", err);
    }
    metrics.call("test", "upstream_timeout");
    log.warn({ reqId: call.requestId, stack: "test", key }, "another caller holds this call's claim and recorded nothing in time");
    sendError(call.res, "UPSTREAM_TIMEOUT", `another caller is forwarding ${call.method} ${call.authority}${call.path} and recorded nothing within ${claimTtlMs} ms`);
  };
}
