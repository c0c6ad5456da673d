import { describe, expect, it } from 'vitest';
import { rawRequest, sidecarOverUpstream } from './harness.js';

/**
 * A signed JSON request is parsed once, and what MODEL_NAME and CACHE_SALT read is that parse: for
 * awkward bodies (duplicate keys, `__proto__`, a BOM, escaped keys, non-objects, other content
 * types) the model the model server got is the one checked and signed, and the salt is the sidecar's.
 */
const stack = sidecarOverUpstream(
  (_req, body, res) => {
    let model = 'served-a';
    try {
      const t = body.toString('utf8').replace(/^\uFEFF/, '');
      const v = JSON.parse(t);
      if (v && typeof v.model === 'string') model = v.model;
    } catch {}
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        id: `chatcmpl-po-${stack.upstream.requests.length}`,
        object: 'chat.completion',
        model,
        choices: [],
      }),
    );
  },
  { MODEL_NAME: 'served-a, served-b', SIGNED_TEXT_FORMAT: 'model', CACHE_SALT: 'per-user' },
);

const post = (body: string | Buffer, ct = 'application/json') =>
  rawRequest(`${stack.sidecar.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': ct, authorization: 'Bearer caller-x' },
    body,
  });

describe('parsed once: the forwarded body and model check agree with what upstream parses', () => {
  const cases: Array<[string, string | Buffer, string?]> = [
    ['duplicate model (served last)', '{"model":"cheap","model":"served-b","messages":[]}'],
    ['duplicate model (unserved last)', '{"model":"served-a","model":"cheap","messages":[]}'],
    ['__proto__ model', '{"__proto__":{"model":"cheap"},"messages":[]}'],
    ['__proto__ own + model', '{"model":"served-b","__proto__":{"model":"cheap"},"messages":[]}'],
    [
      'BOM',
      Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"model":"served-b","messages":[]}')]),
    ],
    ['escaped key', '{"mod\\u0065l":"cheap","messages":[]}'],
    ['escaped cache_salt', '{"model":"served-a","cache\\u005fsalt":"victim","messages":[]}'],
    ['dup cache_salt', '{"model":"served-a","cache_salt":"v1","cache_salt":"v2"}'],
    ['array', '[{"model":"cheap"}]'],
    ['string', '"cheap"'],
    ['text/plain', '{"model":"cheap"}', 'text/plain'],
    ['json with charset', '{"model":"cheap"}', 'application/json; charset=utf-16'],
    ['form content type', '{"model":"cheap","messages":[]}', 'application/x-www-form-urlencoded'],
    ['trailing ws after brace', '{"model":"served-a"}   \n'],
    ['huge number', '{"model":"served-a","seed":18446744073709551615}'],
  ];
  for (const [name, body, ct] of cases) {
    it(name, async () => {
      const n = stack.upstream.requests.length;
      const res = await post(body, ct);
      const fwd = stack.upstream.requests.length > n ? stack.upstream.requests.at(-1)!.body : undefined;
      let upModel: unknown;
      let upSalt: unknown;
      if (fwd !== undefined) {
        try {
          const v = JSON.parse(fwd.toString('utf8').replace(/^\uFEFF/, ''));
          upModel = v?.model;
          upSalt = v?.cache_salt;
        } catch {}
      }
      const text =
        res.status === 200
          ? (
              await rawRequest(`${stack.sidecar.url}/v1/signature/${res.headers['zg-res-key']}`)
            ).body.toString()
          : '';
      console.log(
        name,
        '=>',
        res.status,
        'upstream model',
        upModel,
        'salt',
        typeof upSalt === 'string' ? upSalt.slice(0, 8) : upSalt,
        'fwd',
        fwd?.toString().slice(0, 100),
        'signed',
        text.slice(0, 60),
      );
      expect(res.status).toBeGreaterThan(0);
      // Held: anything that reaches the upstream as a JSON object names a served model.
      if (fwd !== undefined && upModel !== undefined) expect(['served-a', 'served-b']).toContain(upModel);
      if (fwd !== undefined && ct === undefined && upModel !== undefined)
        expect(upSalt).not.toMatch(/^v|victim/);
    });
  }
});
