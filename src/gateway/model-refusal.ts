import { modelOf } from '../bytes/index.js';
import { SidecarError } from '../errors/index.js';

/**
 * The local refusal of a request for a model the policy does not allow (400 `model_not_allowed`,
 * nothing sent to the provider), or undefined to forward it. A body that names no model (not JSON, or
 * no `model` string) is refused too: the provider would pick one itself. The message names no value.
 */
export const modelRefusal = (
  models: readonly string[] | undefined,
  body: Uint8Array | undefined,
): SidecarError | undefined => {
  if (models === undefined || body === undefined) return undefined;
  const model = modelOf(body);
  if (typeof model === 'string' && models.includes(model)) return undefined;
  return new SidecarError(
    typeof model === 'string'
      ? 'this gateway does not allow the requested model (policy models)'
      : 'the request names no model; this gateway allows only the models of its policy',
    { status: 400, code: 'model_not_allowed', param: 'model' },
  );
};
