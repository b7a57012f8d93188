// Calls to the query API with the analyst's bearer token. The token lives in sessionStorage
// (this tab only); a `#token=…` fragment is taken once and stripped from the address bar.

const TOKEN_KEY = 'linkage.dashboard.token';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value.trim());
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** Takes a token from the URL fragment (`#token=…`), keeps it and removes it from the URL. */
export function takeTokenFromFragment() {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ''));
  const value = fragment.get('token');
  if (!value) return false;
  setToken(value);
  history.replaceState(null, '', location.pathname + location.search);
  return true;
}

/** An answer that is not 2xx: the problem+json's `title` and `detail` when there is one. */
export class ApiProblem extends Error {
  constructor(status, title, detail, type) {
    super(detail ? `${title}: ${detail}` : title);
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.type = type;
  }
}

function url(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params ?? {})) {
    if (value !== undefined && value !== null && value !== '') query.set(name, value);
  }
  const q = query.toString();
  return q ? `${path}?${q}` : path;
}

async function call(path, params, accept) {
  const headers = { Accept: accept };
  const bearer = token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  let response;
  try {
    response = await fetch(url(path, params), { headers, cache: 'no-store' });
  } catch (e) {
    throw new ApiProblem(0, 'network', String(e.message ?? e));
  }
  if (response.ok) return response;
  let title = response.statusText || `HTTP ${response.status}`;
  let detail = '';
  let type;
  const contentType = response.headers.get('Content-Type') ?? '';
  if (contentType.includes('json')) {
    try {
      const problem = await response.json();
      title = problem.title ?? title;
      detail = problem.detail ?? '';
      type = problem.type;
    } catch {
      // A broken body still has its status.
    }
  } else {
    detail = (await response.text()).slice(0, 300);
  }
  throw new ApiProblem(response.status, title, detail, type);
}

/** GET a JSON route; throws `ApiProblem` on anything but 2xx. */
export async function getJson(path, params) {
  const response = await call(path, params, 'application/json');
  return response.json();
}

/** GET a file; resolves to `{ blob, filename }` (the name from Content-Disposition). */
export async function getFile(path, params, fallbackName) {
  const response = await call(path, params, '*/*');
  const blob = await response.blob();
  return { blob, filename: filenameFrom(response.headers.get('Content-Disposition')) ?? fallbackName };
}

/** The file name of a Content-Disposition header (RFC 6266: `filename*` wins over `filename`). */
export function filenameFrom(header) {
  if (!header) return null;
  const extended = /filename\*\s*=\s*([^']*)'[^']*'([^;]+)/i.exec(header);
  if (extended) {
    try {
      return decodeURIComponent(extended[2].trim());
    } catch {
      // Fall through to the plain name.
    }
  }
  const plain = /filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]+))/i.exec(header);
  if (!plain) return null;
  return (plain[1] ?? plain[2]).replace(/\\(.)/g, '$1').trim();
}

/** Saves a blob as a download under `filename`. */
export function save(blob, filename) {
  const href = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = href;
  a.download = filename;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  // The download has started from the object URL; free it once the browser is done with it.
  setTimeout(() => URL.revokeObjectURL(href), 60_000);
}
