/**
 * Errors with an HTTP meaning. `app.onError` maps each to a problem+json response;
 * anything else becomes a 500 without leaking its message.
 */
export class HttpProblemError extends Error {
  override name = "HttpProblemError";
  constructor(
    readonly status: number,
    readonly title: string,
    detail?: string,
    readonly extensions: Record<string, unknown> = {},
    options?: ErrorOptions,
  ) {
    super(detail ?? title, options);
  }
}

export class NotFoundError extends HttpProblemError {
  override name = "NotFoundError";
  constructor(detail: string) {
    super(404, "Not Found", detail);
  }
}

export class ConflictError extends HttpProblemError {
  override name = "ConflictError";
  constructor(detail: string, options?: ErrorOptions) {
    super(409, "Conflict", detail, {}, options);
  }
}

export class UnprocessableError extends HttpProblemError {
  override name = "UnprocessableError";
  constructor(detail: string, extensions: Record<string, unknown> = {}) {
    super(422, "Unprocessable Content", detail, extensions);
  }
}

/** The service cannot take the request now (overloaded, a dependency down): 503 with Retry-After. */
export class ServiceUnavailableError extends HttpProblemError {
  override name = "ServiceUnavailableError";
  constructor(
    detail: string,
    /** Seconds for the Retry-After header. */
    readonly retryAfter = 1,
  ) {
    super(503, "Service Unavailable", detail);
  }
}

/**
 * Consumer-side: a message that can never succeed (bad JSON, schema violation, unknown type,
 * a reference that cannot exist). The runner dead-letters it at once instead of retrying.
 */
export class PermanentError extends Error {
  override name = "PermanentError";
  // Structurally distinct from Error, so TypeScript's narrowing never mistakes one for the other.
  readonly permanent = true;
}

/** The event body could not be parsed or validated. */
export class InvalidEventError extends PermanentError {
  override name = "InvalidEventError";
}

/** No handler knows this event type or version. */
export class UnknownEventTypeError extends PermanentError {
  override name = "UnknownEventTypeError";
}

/**
 * A start-up failure whose message says all an operator needs (a port in use, a data directory
 * held by another process): printed without a stack trace.
 */
export class StartupError extends Error {
  override name = "StartupError";
}
