/**
 * The ledger's outcome of a money event, published on `<ns>.outcome.<causationId>`: the
 * contract between the ledger, which decides and publishes it, and the runtime and app,
 * which wait for it (a funding hold, a deposit). Neither side imports the other for it.
 */
export type PostingKind =
  'hold' | 'release' | 'return' | 'settle' | 'fee_hold' | 'deposit' | 'withdrawal' | 'reserve' | 'unreserve' | 'clear';
export type PostingResult = 'ok' | 'insufficient_funds' | 'reference_conflict';

export interface Outcome {
  /** The id of the event that asked for it. */
  causationId: string;
  kind: PostingKind;
  result: PostingResult;
  currency: string;
  amount: string;
  milestoneId?: string;
  userId?: string;
}
