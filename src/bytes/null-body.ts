/**
 * Whether a response with this status (to this method) has no body: the Fetch standard's null-body
 * statuses (101, 103, 204, 205, 304; `new Response(body, { status })` throws for them) and any answer
 * to HEAD. One rule for every place that turns a provider's answer into a web `Response`.
 */
export const nullBody = (status: number, method?: string): boolean =>
  status === 101 || status === 103 || status === 204 || status === 205 || status === 304 || method === 'HEAD';
