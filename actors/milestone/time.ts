/** Deadlines: when a window ends, and whether it has. */

export const later = (iso: string, ms: number) => new Date(Date.parse(iso) + ms).toISOString();

export const reached = (at: string, due: string) => due !== '' && Date.parse(at) >= Date.parse(due);

/** What a running timer has left at `at` (ms, 0 once due): what a dispute or a freeze keeps, to re-arm it with later. */
export const timeLeft = (dueAt: string, at: string) => Math.max(0, Date.parse(dueAt) - Date.parse(at));
