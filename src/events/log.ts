import { randomBytes } from 'node:crypto';
import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import {
  jetstream,
  jetstreamManager,
  JetStreamApiCodes,
  JetStreamApiError,
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { headers, RequestError, TimeoutError } from '@nats-io/transport-node';
import { EscrowError, Unavailable } from '../errors.js';
import { CONTENT_TYPE, decode, encode, type CloudEvent } from './cloudevent.js';
import type { Names } from './names.js';
import { EventSigner, SIGNATURE_HEADER } from './signing.js';
import { metrics } from '../metrics.js';
import { injectInto } from '../tracing.js';
import { clusterVersions } from './peers.js';
import { retriedLater } from '../log.js';

/** Header with the entity version an event produced, so followers need not parse the body. */
export const VERSION_HEADER = 'Escrow-Version';

/** Raised when the subject moved past the sequence the appender expected (JS_CODES.StreamWrongLastSequence). */
export class WrongLastSequence extends Error {
  constructor(readonly subject: string) {
    super(`wrong last sequence on ${subject}`);
  }
}

export interface Stored<D> {
  readonly seq: number;
  readonly event: CloudEvent<D>;
  /** Bytes of the message body. */
  readonly size: number;
  /** Epoch ms the server stored it at: read only when asked for (readSubject's `times`). */
  readonly storedAt?: number;
}

/** How long a JetStream request (append, direct get) may take before it is UNAVAILABLE. */
const REQUEST_TIMEOUT_MS = 3_000;

/**
 * The first nats-server release whose replicated (clustered) streams serialize concurrent
 * appends carrying the same expected last subject sequence (nats-server#4320, fixed in
 * 2.9.21). Before it, two gateways could both append a release and a cancel of one milestone:
 * the fault suite reproduces it on 2.9.10 (test/faults/nats-cas.test.ts).
 */
export const SAFE_REPLICATED_SERVER = '2.9.21';

/**
 * The first release with the fixes for replicated streams that the cluster suite runs into
 * on 2.10.14: an expected last subject sequence of 0 checked on every replica alike
 * (nats-server#5644, 2.10.19) and no "duplicate at sequence 0" for a msgID that was never
 * stored (#6415, 2.10.25; the engine works around it, see append). Older servers are warned of.
 */
export const RECOMMENDED_CLUSTER_SERVER = '2.10.25';

export class UnsafeEventLog extends Error {
  /** `servers`: the names and versions of the nodes found too old, e.g. `escrow-node-1 2.9.10`. */
  constructor(servers: string, replicas: number) {
    super(
      `nats-server ${servers} does not serialize conditional appends on replicated streams (nats-server#4320, fixed in ${SAFE_REPLICATED_SERVER}); ` +
        `the stream has ${replicas} replicas, which would let a milestone be released and cancelled at once. ` +
        `Upgrade nats-server (2.10+ with sync_interval: always), or use an R1 stream.`,
    );
    this.name = 'UnsafeEventLog';
  }
}

/** After a reconnect the server could not be checked yet: nothing is appended until it is. */
export class UnverifiedEventLog extends Error {
  constructor(cause: unknown) {
    super(
      `the NATS server reached after a reconnect could not be checked for safe conditional appends yet: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
    this.name = 'UnverifiedEventLog';
  }
}

/** How often a failed safety check after a reconnect is tried again. */
const RECHECK_EVERY_MS = 500;
/** How often the versions of the stream's peers are read again (a node may rejoin on another version). */
const PEER_CHECK_EVERY_MS = 10_000;
/** How many fresh msgIDs an append tries when the server answers "duplicate" at sequence 0 (see append). */
const UNSTORED_DUPLICATE_RETRIES = 3;
/** How long an append or read keeps retrying while the cluster elects a leader (ESCROW_LOG_RETRY_MS). */
const RETRY_BUDGET_MS = 2_000;

/** How long start-up waits for a cluster that has no JetStream leader yet. */
const START_WAIT_MS = 30_000;

/** Runs `fn` again on transient cluster errors (isTransient), with backoff, until `until` (epoch ms) or while `live()`. */
async function retryTransient<T>(fn: () => Promise<T>, until: number, live: () => boolean): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const pause = Math.min(50 * 2 ** attempt, 500);
      if (!isTransient(err) || Date.now() + pause >= until || !live()) throw err;
      metrics.logRetries.inc();
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
}

/**
 * Errors of a cluster between leaders: the stream or the meta group has no leader yet (no
 * responders, JetStream "temporarily unavailable" 10008, "no suitable peers" 10005), or a request that timed out while
 * one was being elected. Retried with backoff inside the budget; every append carries its
 * event id as msgID, so a retry of one that was stored is answered as a duplicate, not stored twice.
 */
export function isTransient(err: unknown): boolean {
  if (err instanceof JetStreamApiError) return err.code === JS_CODES.ClusterNotAvailable || err.code === JS_CODES.ClusterNoPeers;
  if (err instanceof TimeoutError) return true;
  if (err instanceof RequestError) return err.isNoResponders();
  // The client's error for a request nobody answered (its class is not exported).
  return err instanceof Error && err.name === 'JetStreamNotEnabled';
}

/**
 * The signature header of a stored message. The client types a message's headers as always
 * there; a message published without any has none, which is read as unsigned.
 */
function signatureOf(m: { header?: MsgHdrs | undefined }): string | undefined {
  return m.header?.get(SIGNATURE_HEADER);
}

export function versionAtLeast(version: string, min: string): boolean {
  const a = version.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  const b = min.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

export interface StreamOptions {
  duplicateWindowMs: number;
  /** The deployment's secret events are signed with (ESCROW_EVENT_KEY, by default AUTH_JWT_SECRET). */
  signingSecret: string;
  /**
   * Run on a replicated stream even when the server cannot serialize conditional appends.
   * Only for the fault suite's single-gateway node-loss test. Default false.
   */
  allowUnsafeReplicas?: boolean;
  /** Default 3000. */
  requestTimeoutMs?: number;
  /** How long transient cluster errors are retried (see isTransient). Default 2000; 0: not retried. */
  retryMs?: number;
  /** Replicas of the stream; 3 in a JetStream cluster. Default 1. */
  replicas?: number;
  /**
   * The stream's byte limit: at it, appends are refused (UNAVAILABLE `EVENT_LOG_FULL`), never
   * old events discarded. Unset: no limit (read-only tools).
   */
  maxBytes?: number;
  /** Largest message the stream stores. Default 65536. */
  maxMessageBytes?: number;
  /** Called when the stream passes 80% of its byte limit, and again at each further 5%. */
  onFull?: (usedBytes: number, maxBytes: number) => void;
}

/** The first nats-server release whose streams honor `discard: new` at their byte limit (2.9.10 drops old messages instead). */
export const DISCARD_NEW_SERVER = '2.10.0';
/** How often the fullness of the stream is read. */
const FULLNESS_EVERY_MS = 1_000;

/**
 * The event log: one JetStream stream per namespace. Appends are optimistic (expected last
 * subject sequence) and deduplicated (msgID = event id); reads are direct gets of one message.
 */
export class EventLog {
  private constructor(
    readonly nc: NatsConnection,
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    readonly names: Names,
    readonly signer: EventSigner,
  ) {}

  /** False while the connection to NATS is down: calls then fail at once with UNAVAILABLE. */
  private connected = true;
  /** Set when, after a reconnect, the server can no longer be trusted with conditional appends, or could not be checked yet. */
  private unsafe: UnsafeEventLog | UnverifiedEventLog | null = null;
  /** Counts reconnects, so that a check still running for an earlier one does not overwrite a later one's. */
  private reconnects = 0;

  static async open(nc: NatsConnection, names: Names, options: StreamOptions): Promise<EventLog> {
    const timeout = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    // A cluster that is still electing its leaders (a node just lost) answers "temporarily
    // unavailable", or not at all, for several seconds: start-up waits for it.
    const startUntil = Date.now() + START_WAIT_MS;
    const jsm = await retryTransient(
      () => jetstreamManager(nc, { timeout }),
      startUntil,
      () => !nc.isClosed(),
    );
    const log = new EventLog(nc, jetstream(nc, { timeout }), jsm, names, new EventSigner(options.signingSecret, names.namespace));
    log.retryMs = options.retryMs ?? RETRY_BUDGET_MS;
    await log.retrying(() => log.ensureStream(options), startUntil);
    const unsafe = await log.retrying(() => log.unsafeReason(options), startUntil);
    if (unsafe) throw unsafe;
    void log.followConnection(options);
    log.watchPeers(options);
    if (options.maxBytes) log.watchFullness(options.maxBytes, options.onFull);
    return log;
  }

  private retryMs = RETRY_BUDGET_MS;

  /** Runs `fn` again on transient cluster errors (isTransient), with backoff, until `until` (epoch ms). */
  retrying<T>(fn: () => Promise<T>, until: number = Date.now() + this.retryMs): Promise<T> {
    // Not while the server is unverified after a reconnect: a retry must not go where an append would not.
    return retryTransient(fn, until, () => this.available);
  }

  /** The last version seen of every node of the cluster, by server name. */
  readonly peerVersions = new Map<string, string>();

  /**
   * Refuses a replicated stream where a node holding one of its replicas (or the connected
   * server) runs a version that cannot serialize conditional appends. The versions come from
   * each node's INFO (see peers.ts); a node that cannot be reached right now keeps the version
   * it was last seen with, and one never seen is checked when it answers (every 10 s).
   */
  private async unsafeReason(options: StreamOptions): Promise<UnsafeEventLog | null> {
    const info = await this.jsm.streams.info(this.names.stream);
    this.leaderReads = info.config.num_replicas > 1;
    if (options.allowUnsafeReplicas || info.config.num_replicas <= 1) return null;
    const own = this.nc.info;
    const seen = await clusterVersions(own?.connect_urls ?? [], own ? [{ server_name: own.server_name, version: own.version }] : []);
    for (const [name, version] of seen) this.peerVersions.set(name, version);
    const peers = new Set(
      [own?.server_name ?? '', info.cluster?.leader ?? '', ...(info.cluster?.replicas ?? []).map((r) => r.name)].filter(Boolean),
    );
    const old = [...peers].filter((p) => {
      const version = this.peerVersions.get(p);
      return version !== undefined && !versionAtLeast(version, SAFE_REPLICATED_SERVER);
    });
    if (!own) old.push('(unknown) 0.0.0');
    return old.length > 0
      ? new UnsafeEventLog(old.map((p) => `${p} ${this.peerVersions.get(p) ?? ''}`.trim()).join(', '), info.config.num_replicas)
      : null;
  }

  private peerTimer: NodeJS.Timeout | null = null;

  /**
   * Reads the peers' versions again every 10 s: a node that rejoins on an old version makes
   * the log unsafe. A check that fails keeps the last verdict (the node set did not change
   * under this connection; a reconnect's own check fails closed).
   */
  private watchPeers(options: StreamOptions): void {
    let running = false;
    this.peerTimer = setInterval(() => {
      if (running || this.unsafe instanceof UnverifiedEventLog || !this.connected) return;
      running = true;
      const generation = this.reconnects;
      this.unsafeReason(options)
        .then((unsafe) => {
          if (generation === this.reconnects && !(this.unsafe instanceof UnverifiedEventLog)) this.unsafe = unsafe;
        })
        // The last verdict stands until a check answers (a failed one never marks the log safe).
        .catch(retriedLater('the check of the cluster peers'))
        .finally(() => (running = false));
    }, PEER_CHECK_EVERY_MS);
    this.peerTimer.unref();
  }

  private async followConnection(options: StreamOptions): Promise<void> {
    for await (const s of this.nc.status()) {
      if (s.type === 'disconnect') this.connected = false;
      else if (s.type === 'reconnect') {
        // The server may be another node now, of another version, or the stream rescaled:
        // nothing is appended until it has been checked again (a check that fails counts as
        // unsafe and is tried again, never as safe).
        this.unsafe = new UnverifiedEventLog('not checked yet');
        this.connected = true;
        void this.recheck(options, ++this.reconnects);
      }
    }
  }

  /** The safety check after reconnect `generation`, tried until it answers. Fails closed. */
  async recheck(options: StreamOptions, generation = this.reconnects): Promise<void> {
    while (generation === this.reconnects && !this.nc.isClosed()) {
      try {
        const unsafe = await this.unsafeReason(options);
        if (generation === this.reconnects) this.unsafe = unsafe;
        return;
      } catch (err) {
        if (generation === this.reconnects) this.unsafe = new UnverifiedEventLog(err);
        await new Promise((resolve) => setTimeout(resolve, RECHECK_EVERY_MS));
      }
    }
  }

  /** Whether appends and reads can be tried now: connected, and the server trusted. */
  get available(): boolean {
    return this.connected && !this.nc.isClosed() && !this.unsafe;
  }

  private ensureConnected(): void {
    // Buffering a command until NATS comes back would answer it late, or after the client
    // gave up; failing fast lets the client retry (with the same key) elsewhere or later.
    if (!this.connected || this.nc.isClosed()) throw new Unavailable('EVENT_LOG_UNAVAILABLE', 'the event log is unreachable');
    if (this.unsafe) throw new Unavailable('EVENT_LOG_UNSAFE', this.unsafe.message);
  }

  /** Bytes the stream holds, as last read, and its limit (0: none). */
  fullness = { used: 0, max: 0 };
  private fullnessTimer: NodeJS.Timeout | null = null;

  /** Reads the stream's size every second; warns from 80% on; refuses appends at the limit (see append). */
  private watchFullness(maxBytes: number, onFull?: (used: number, max: number) => void): void {
    this.fullness.max = maxBytes;
    let warnedAt = 0;
    const check = async () => {
      const info = await this.jsm.streams.info(this.names.stream).catch(() => null);
      if (!info) return;
      this.fullness.used = info.state.bytes;
      metrics.streamBytes.set(info.state.bytes);
      metrics.streamMaxBytes.set(maxBytes);
      metrics.streamLastSeq.set(info.state.last_seq);
      const share = info.state.bytes / maxBytes;
      const step = share >= 0.8 ? Math.floor(share * 20) / 20 : 0;
      if (step > warnedAt) onFull?.(info.state.bytes, maxBytes);
      warnedAt = step;
    };
    void check();
    this.fullnessTimer = setInterval(() => void check(), FULLNESS_EVERY_MS);
    this.fullnessTimer.unref();
  }

  stopWatching(): void {
    if (this.fullnessTimer) clearInterval(this.fullnessTimer);
    if (this.peerTimer) clearInterval(this.peerTimer);
  }

  private async ensureStream(options: StreamOptions): Promise<void> {
    // The server enforces the byte limit only where it refuses new messages at it; an older
    // one would discard the oldest events instead, so there the engine's own check (see
    // watchFullness) is the only one. Outcomes get 2% beyond the limit gateways stop at.
    const serverLimit =
      options.maxBytes && versionAtLeast(this.nc.info?.version ?? '0.0.0', DISCARD_NEW_SERVER)
        ? Math.ceil(options.maxBytes * 1.02)
        : undefined;
    const limits = {
      max_msg_size: options.maxMessageBytes ?? 65_536,
      ...(serverLimit ? { max_bytes: serverLimit, discard: DiscardPolicy.New } : {}),
    };
    const config = {
      name: this.names.stream,
      subjects: [this.names.allSubjects],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      num_replicas: options.replicas ?? 1,
      duplicate_window: options.duplicateWindowMs * 1_000_000,
      allow_direct: true,
      ...limits,
    };
    try {
      const info = await this.jsm.streams.info(this.names.stream);
      // Read-only tools pass no limits and change nothing.
      if (
        options.maxBytes &&
        (info.config.max_msg_size !== limits.max_msg_size || (serverLimit && info.config.max_bytes !== serverLimit))
      ) {
        await this.jsm.streams.update(this.names.stream, { ...info.config, ...limits });
      }
    } catch (err) {
      if (!(err instanceof JetStreamApiError) || err.code !== JS_CODES.StreamNotFound) throw err;
      try {
        await this.jsm.streams.add(config);
      } catch (addErr) {
        // Another process created it first: that is the same stream.
        if (!(addErr instanceof JetStreamApiError) || addErr.code !== JS_CODES.StreamNameInUse) throw addErr;
      }
    }
  }

  /**
   * Appends an event to `subject` if its last sequence is still `expectedLastSeq` (0: no
   * message yet). A repeat of an event id inside the duplicate window is not stored again:
   * the answer then says `duplicate` and carries the original sequence.
   */
  async append(
    subject: string,
    event: CloudEvent<unknown>,
    expectedLastSeq: number | null,
    extraHeaders: Record<string, string> = {},
    o: { consequence?: boolean; deadline?: number | undefined } = {},
  ): Promise<{ seq: number; duplicate: boolean }> {
    this.ensureConnected();
    // A full stream takes no new commands; the ledger's outcomes of commands already taken still go in.
    if (!o.consequence && this.fullness.max > 0 && this.fullness.used >= this.fullness.max) {
      throw new Unavailable(
        'EVENT_LOG_FULL',
        `the event stream holds ${this.fullness.used} of its ${this.fullness.max} bytes; new commands are refused until an operator makes room`,
      );
    }
    const h = headers();
    h.set('Content-Type', CONTENT_TYPE);
    for (const [k, v] of Object.entries(extraHeaders)) h.set(k, v);
    injectInto(h);
    const body = encode(event);
    h.set(SIGNATURE_HEADER, this.signer.sign(subject, body));
    try {
      const until = Math.min(Date.now() + this.retryMs, o.deadline ?? Number.POSITIVE_INFINITY);
      for (let variant = 0; ; variant++) {
        if (variant > 0) {
          if (Date.now() >= until)
            throw new Unavailable('EVENT_LOG_UNAVAILABLE', `the event log answered "duplicate" without storing ${event.id}; retry`);
          // The first attempt may still be in flight rather than refused: what the subject
          // ends with (read from the leader) says. If it is this event, it was stored; if the
          // subject moved, another writer came first; only if neither, a fresh msgID is tried.
          const last = await this.retrying(() => this.jsm.streams.getMessage(this.names.stream, { last_by_subj: subject }), until);
          if (last && decode<{ id?: string }>(last.data).id === event.id) return { seq: last.seq, duplicate: true };
          if ((last?.seq ?? 0) !== expectedLastSeq) throw new WrongLastSequence(subject);
        }
        // A fresh msgID is a new one every time: one tried before may itself be stuck at sequence 0.
        const msgID = variant === 0 ? event.id : `${event.id}~${randomBytes(6).toString('hex')}`;
        const publish = () =>
          this.js.publish(subject, body, {
            msgID,
            headers: h,
            ...(expectedLastSeq === null ? {} : { expect: { lastSubjectSequence: expectedLastSeq } }),
          });
        const ack = await this.retrying(publish, until);
        if (!(ack.duplicate && ack.seq === 0) || expectedLastSeq === null) return { seq: ack.seq, duplicate: ack.duplicate };
        // "Duplicate" at sequence 0 is not a duplicate: nothing is stored there. A clustered
        // nats-server before 2.10.25 keeps a msgID whose append it refused (a wrong expected
        // sequence) or dropped (a leader change) in its dedupe map at sequence 0, and answers
        // every retry with it that way for the whole duplicate window (nats-server#6415,
        // #5827): taken for a duplicate, a reservation never stored would fund a milestone.
        // Under the expected sequence another msgID is safe: if the first attempt is stored
        // after all, the subject has moved and this one is refused (WrongLastSequence).
        metrics.unstoredDuplicates.inc();
        if (variant >= UNSTORED_DUPLICATE_RETRIES)
          throw new Unavailable(
            'EVENT_LOG_UNAVAILABLE',
            `the event log answered "duplicate" without storing ${event.id} ${variant + 1} times`,
          );
      }
    } catch (err) {
      if (err instanceof WrongLastSequence || err instanceof Unavailable) throw err;
      if (err instanceof JetStreamApiError && err.code === JS_CODES.StreamWrongLastSequence) {
        throw new WrongLastSequence(subject);
      }
      if (err instanceof JetStreamApiError && err.code === JS_CODES.StreamStoreFailed)
        throw new Unavailable('EVENT_LOG_FULL', 'the event stream is at its byte limit');
      throw unavailable(err);
    }
  }

  /**
   * Whether reads go to the stream's leader. A direct get may be answered by any replica, and
   * a follower can be behind the leader: it would say a milestone acknowledged a moment ago
   * does not exist, or show a state the log has moved past. On a replicated stream every read
   * therefore uses the message-get API, which the leader answers with what the cluster has
   * acknowledged. On one replica a direct get is the same server, and cheaper.
   */
  private leaderReads = false;

  /** One read of the stream (a message by sequence, or the last or next on a subject); UNAVAILABLE when it fails. */
  private async get(query: { seq: number } | { last_by_subj: string } | { next_by_subj: string; seq: number }) {
    this.ensureConnected();
    try {
      const read = this.leaderReads
        ? // The API takes next_by_subj too (nats-server's JSApiMsgGetRequest).
          () => this.jsm.streams.getMessage(this.names.stream, query)
        : () => this.jsm.direct.getMessage(this.names.stream, query);
      return await this.retrying(read, Date.now() + this.retryMs);
    } catch (err) {
      throw unavailable(err);
    }
  }

  /**
   * The last event on a subject, or null when the subject has none. A last message the engine
   * did not sign (put there by hand) is never taken for the entity's state: INTERNAL
   * `EVENT_UNVERIFIED`, until a person removes it.
   */
  async readLast<D>(subject: string): Promise<Stored<D> | null> {
    const m = await this.get({ last_by_subj: subject });
    if (!m) return null;
    if (!this.verified(subject, m.data, signatureOf(m), m.seq)) {
      throw new EscrowError(
        'INTERNAL',
        'EVENT_UNVERIFIED',
        `the last message on ${subject} (seq ${m.seq}) is not signed by this deployment`,
      );
    }
    return { seq: m.seq, event: decode<D>(m.data), size: m.data.length };
  }

  /**
   * The last message on a subject this deployment signed, and the sequence of the subject's
   * very last message (what a conditional append expects). Unlike readLast, messages put on
   * the subject by hand are passed over: found last, the subject is read from its start (rare,
   * and only for subjects whose owner must not be locked out by a forgery, such as accounts).
   */
  async readLastTrusted<D>(subject: string): Promise<{ last: Stored<D> | null; tailSeq: number }> {
    const m = await this.get({ last_by_subj: subject });
    if (!m) return { last: null, tailSeq: 0 };
    if (this.verified(subject, m.data, signatureOf(m), m.seq)) {
      return { last: { seq: m.seq, event: decode<D>(m.data), size: m.data.length }, tailSeq: m.seq };
    }
    const tailSeq = m.seq;
    let last: Stored<D> | null = null;
    for (let seq = 1; seq <= tailSeq;) {
      const next = await this.get({ next_by_subj: subject, seq });
      if (!next || next.seq > tailSeq) break;
      if (this.verified(subject, next.data, signatureOf(next), next.seq))
        last = { seq: next.seq, event: decode<D>(next.data), size: next.data.length };
      seq = next.seq + 1;
    }
    return { last, tailSeq };
  }

  /** The CloudEvents id of the message at `seq`, signed or not (null: the stream holds none there). */
  async idAt(seq: number): Promise<string | null> {
    const m = await this.get({ seq });
    return m ? decode<unknown>(m.data).id : null;
  }

  /** The raw message at `seq` (signed or not), or null when the stream holds none there. */
  async messageAt(seq: number): Promise<{ seq: number; subject: string; data: Uint8Array; signature: string | undefined } | null> {
    const m = await this.get({ seq });
    return m ? { seq: m.seq, subject: m.subject, data: m.data, signature: signatureOf(m) } : null;
  }

  /** Whether the stream still holds a message at `seq` (signed or not). */
  async holds(seq: number): Promise<boolean> {
    return (await this.get({ seq })) !== null;
  }

  /** The stream's last sequence: everything appended so far is at or before it. */
  async tailSeq(): Promise<number> {
    this.ensureConnected();
    try {
      return (await this.jsm.streams.info(this.names.stream)).state.last_seq;
    } catch (err) {
      throw unavailable(err);
    }
  }

  /** The message at stream sequence `seq` (signed by this deployment), or null if there is none. */
  async readAt<D>(seq: number): Promise<Stored<D> | null> {
    const m = await this.get({ seq });
    if (!m) return null;
    if (!this.verified(m.subject, m.data, signatureOf(m), m.seq)) {
      throw new EscrowError('INTERNAL', 'EVENT_UNVERIFIED', `message ${m.seq} on ${m.subject} is not signed by this deployment`);
    }
    return { seq: m.seq, event: decode<D>(m.data), size: m.data.length };
  }

  /**
   * The messages of a subject after sequence `after` and before `before`, in order: one
   * direct get each (next message on the subject from a sequence). Each must be signed.
   */
  async *readSubject<D>(subject: string, after: number, before: number, times = false): AsyncGenerator<Stored<D>> {
    let seq = after + 1;
    while (seq < before) {
      const m = await this.get({ next_by_subj: subject, seq });
      if (!m || m.seq >= before) return;
      if (!this.verified(subject, m.data, signatureOf(m), m.seq)) {
        throw new EscrowError('INTERNAL', 'EVENT_UNVERIFIED', `message ${m.seq} on ${subject} is not signed by this deployment`);
      }
      yield times
        ? { seq: m.seq, event: decode<D>(m.data), size: m.data.length, storedAt: m.time.getTime() }
        : { seq: m.seq, event: decode<D>(m.data), size: m.data.length };
      seq = m.seq + 1;
    }
  }

  /** Messages before this sequence predate signing (an earlier version's) and are trusted unsigned. */
  private signedSince = 0;

  /** Set once at start-up from the database (see migration 005). */
  trustUnsignedBefore(seq: number): void {
    this.signedSince = seq;
  }

  /** Whether a message of the stream was published by this deployment's engine. */
  verified(subject: string, body: Uint8Array, signature: string | undefined | null, seq?: number): boolean {
    if (seq !== undefined && seq < this.signedSince) return true;
    return this.signer.verify(subject, body, signature);
  }
}

export function unavailable(err: unknown): Unavailable {
  const message = err instanceof Error ? err.message : String(err);
  return new Unavailable('EVENT_LOG_UNAVAILABLE', `the event log is unavailable: ${message}`, err);
}

/**
 * The JetStream API error codes the engine acts on, by name: the client's own list, and the
 * two it lacks (nats-server's errors.json: JSStreamNameExistErr, JSStreamStoreFailedF).
 */
export const JS_CODES = {
  ...JetStreamApiCodes,
  /** A stream of that name exists with another configuration. */
  StreamNameInUse: 10058,
  /** JSClusterNotAvailErr: "JetStream system temporarily unavailable" (no meta or stream leader yet). */
  ClusterNotAvailable: 10008,
  /**
   * JSClusterNoPeersErrF: "no suitable peers for placement". Seen at start-up right after a
   * node was lost: the stream's info answered "not found" for a moment, and creating it again
   * found a peer offline. Tried again like the others, so the stream is found once elected.
   */
  ClusterNoPeers: 10005,
  /** The stream could not store the message, e.g. at its byte limit with discard: new. */
  StreamStoreFailed: 10077,
} as const;
