// Process-wide shared data (contract.md §9): one namespace per vm_id, shared by every VM of the
// host; one global CAS counter starting at 1; cas 0 = unconditional; a non-zero cas must match
// on an existing key; on a missing key any cas is accepted.
import { Status } from "./types.ts";

interface Entry {
  value: Uint8Array;
  cas: number;
}

export class SharedData {
  private readonly namespaces = new Map<string, Map<string, Entry>>();
  private nextCas = 1;

  private ns(vmId: string): Map<string, Entry> {
    let m = this.namespaces.get(vmId);
    if (!m) this.namespaces.set(vmId, (m = new Map()));
    return m;
  }

  get(vmId: string, key: string): Entry | undefined {
    return this.namespaces.get(vmId)?.get(key);
  }

  set(vmId: string, key: string, value: Uint8Array, cas: number): Status {
    const m = this.ns(vmId);
    const cur = m.get(key);
    if (cur && cas !== 0 && cur.cas !== cas) return Status.CasMismatch;
    m.set(key, { value: value.slice(), cas: this.nextCas++ });
    return Status.Ok;
  }
}

/** Shared queues (§9): keyed by (vm_id, name); ready notifications go to the registering root. */
export interface QueueOwner {
  worker: number;
  rootContextId: number;
}
interface Queue {
  token: number;
  vmId: string;
  name: string;
  owner: QueueOwner;
  items: Uint8Array[];
}

export class SharedQueues {
  private readonly byName = new Map<string, Queue>();
  private readonly byToken = new Map<number, Queue>();
  private nextToken = 1;

  register(vmId: string, name: string, owner: QueueOwner): number {
    const key = `${vmId}\0${name}`;
    let q = this.byName.get(key);
    if (q) {
      q.owner = owner; // re-registration moves the notifications to the new root (cpp-host)
      return q.token;
    }
    q = { token: this.nextToken++, vmId, name, owner, items: [] };
    this.byName.set(key, q);
    this.byToken.set(q.token, q);
    return q.token;
  }

  resolve(vmId: string, name: string): number | undefined {
    return this.byName.get(`${vmId}\0${name}`)?.token;
  }

  enqueue(token: number, value: Uint8Array): Queue | undefined {
    const q = this.byToken.get(token);
    if (!q) return undefined;
    q.items.push(value.slice());
    return q;
  }

  dequeue(token: number): { status: Status; value?: Uint8Array } {
    const q = this.byToken.get(token);
    if (!q) return { status: Status.NotFound };
    const v = q.items.shift();
    return v ? { status: Status.Ok, value: v } : { status: Status.Empty };
  }

  size(token: number): number {
    return this.byToken.get(token)?.items.length ?? 0;
  }
}
