// Callers waiting for a record key, shared by the stores (memory, redis): one list per key;
// `wake` resolves every waiter of a key with the value, a timer or an abort signal resolves one
// with `undefined` (and removes it), `closeAll` resolves them all with `undefined`. Each waiter
// settles exactly once.
import type { StoredResponse } from "./types.ts";

/** Longest delay a Node timer can hold (~24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Waiter {
  key: string;
  resolve: (value: StoredResponse | undefined) => void;
  timer: NodeJS.Timeout | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  done: boolean;
}

export class Waiters {
  private readonly byKey = new Map<string, Waiter[]>();

  /** Number of keys with at least one waiter. */
  get size(): number {
    return this.byKey.size;
  }

  has(key: string): boolean {
    return this.byKey.has(key);
  }

  /** The keys with at least one waiter. */
  keys(): IterableIterator<string> {
    return this.byKey.keys();
  }

  /** Registers a waiter for `key` (synchronously) and resolves with the value `wake` gives it,
   * or undefined after `timeoutMs` (no timer when longer than a timer can hold, e.g. Infinity),
   * when `signal` aborts, or on `closeAll`. The caller checks `timeoutMs > 0` and
   * `signal.aborted` first. */
  wait(key: string, timeoutMs: number, signal?: AbortSignal): Promise<StoredResponse | undefined> {
    return new Promise<StoredResponse | undefined>((resolve) => {
      const w: Waiter = { key, resolve, timer: undefined, signal, onAbort: undefined, done: false };
      if (timeoutMs <= MAX_TIMER_MS) {
        w.timer = setTimeout(() => {
          w.timer = undefined;
          this.drop(w);
          settle(w, undefined);
        }, timeoutMs);
      }
      if (signal) {
        w.onAbort = () => {
          this.drop(w);
          settle(w, undefined);
        };
        signal.addEventListener("abort", w.onAbort, { once: true });
      }
      const list = this.byKey.get(key);
      if (list) list.push(w);
      else this.byKey.set(key, [w]);
    });
  }

  /** Number of waiters of `key`. */
  count(key: string): number {
    return this.byKey.get(key)?.length ?? 0;
  }

  /** Resolves (and removes) every waiter of `key` with `value`. */
  wake(key: string, value: StoredResponse): void {
    const list = this.byKey.get(key);
    if (!list) return;
    this.byKey.delete(key);
    for (const w of list) settle(w, value);
  }

  /** Resolves (and removes) every waiter with undefined. */
  closeAll(): void {
    const all = [...this.byKey.values()];
    this.byKey.clear();
    for (const list of all) for (const w of list) settle(w, undefined);
  }

  private drop(w: Waiter): void {
    const list = this.byKey.get(w.key);
    if (!list) return;
    const i = list.indexOf(w);
    if (i < 0) return;
    if (list.length === 1) this.byKey.delete(w.key);
    else list.splice(i, 1);
  }
}

function settle(w: Waiter, value: StoredResponse | undefined): void {
  if (w.done) return;
  w.done = true;
  if (w.timer !== undefined) clearTimeout(w.timer);
  if (w.signal && w.onAbort) w.signal.removeEventListener("abort", w.onAbort);
  w.resolve(value);
}
