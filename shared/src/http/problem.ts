/** RFC 9457 problem details. Extension members (like `errors`) sit beside the standard ones. */
export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance?: string;
  [extension: string]: unknown;
}

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

/** `type` URIs for the problems this system returns; `about:blank` means "see the status code". */
export const problemTypes = {
  validation: "urn:orderflow:problem:validation-error",
  conflict: "urn:orderflow:problem:conflict",
  unprocessable: "urn:orderflow:problem:unprocessable",
  unavailable: "urn:orderflow:problem:service-unavailable",
} as const;

const typeForStatus: Record<number, string> = {
  400: problemTypes.validation,
  409: problemTypes.conflict,
  422: problemTypes.unprocessable,
  503: problemTypes.unavailable,
};

export function problem(status: number, title: string, detail?: string, extensions: Record<string, unknown> = {}): ProblemDetails {
  return { type: typeForStatus[status] ?? "about:blank", title, status, ...(detail ? { detail } : {}), ...extensions };
}

export function problemResponse(p: ProblemDetails, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(p), {
    status: p.status,
    headers: { "content-type": PROBLEM_CONTENT_TYPE, ...headers },
  });
}
