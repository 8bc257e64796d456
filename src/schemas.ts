import { CHANGE_SCHEMAS } from '../actors/events.js';

/**
 * `npm run schemas`: the JSON Schema of `data.change` for every event type, as one JSON
 * document keyed by CloudEvents type (escrow.<entity>.<type>.v1), for consumers' own tooling.
 */
const out: Record<string, unknown> = {};
for (const [entity, types] of Object.entries(CHANGE_SCHEMAS)) {
  for (const [type, schema] of Object.entries(types))
    out[`escrow.${entity}.${type}.v1`] = { $schema: 'https://json-schema.org/draft/2020-12/schema', ...schema };
}
console.log(JSON.stringify(out, null, 2));
