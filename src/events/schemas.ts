import { Ajv, type ValidateFunction } from 'ajv';
import { CHANGE_SCHEMAS } from '../../actors/events.js';

/**
 * Validators of `data.change` for every event type (actors/events.ts), compiled once.
 * `validateChange('milestone', 'released', change)` returns null when the change has its
 * type's shape, or what is wrong.
 */
const ajv = new Ajv({ allErrors: false, strict: true });
const validators = new Map<string, ValidateFunction>();
for (const [entity, types] of Object.entries(CHANGE_SCHEMAS)) {
  for (const [type, schema] of Object.entries(types)) validators.set(`${entity}.${type}`, ajv.compile(schema as object));
}

export function validateChange(entity: string, type: string, change: unknown): string | null {
  const validate = validators.get(`${entity}.${type}`);
  if (!validate) return `no schema for ${entity}.${type}`;
  return validate(change) ? null : ajv.errorsText(validate.errors);
}

/** escrow.milestone.released.v1 -> { entity: 'milestone', type: 'released' }; null for other types. */
export function parseEventType(cloudEventType: string): { entity: string; type: string } | null {
  const m = /^escrow\.([a-z]+)\.([a-z_]+)\.v1$/.exec(cloudEventType);
  return m?.[1] && m[2] ? { entity: m[1], type: m[2] } : null;
}
