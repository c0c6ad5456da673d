/**
 * Drops an unread fetch body without waiting: awaiting cancel() can stall on some fetch
 * implementations (msw's interceptor), and nothing depends on its completion.
 */
export const discard = (response: Response): void => {
  void response.body?.cancel().catch(() => undefined);
};
