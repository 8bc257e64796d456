/** Deadlines: when a window ends, and whether it has. */

export const later = (iso: string, ms: number) => new Date(Date.parse(iso) + ms).toISOString();

export const reached = (at: string, due: string) => due !== '' && Date.parse(at) >= Date.parse(due);
