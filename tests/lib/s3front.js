#!/usr/bin/env node
/*
 * s3front.js: the SigV4-checking front the tests put before s3rver (or moto).
 *
 * s3rver (tests/lib/s3server.py installs and starts it) stores and serves
 * objects and multipart uploads like S3, but it does not verify SigV4
 * signatures and it has no AbortMultipartUpload. This front listens on
 * 127.0.0.1, checks every request the way S3 does, and proxies the valid
 * ones to the store. Node's standard library only: no npm package beyond
 * s3rver itself.
 *
 *   node s3front.js --port P --upstream-port U --region R --access-key AK \
 *        --secret SK [--backend s3rver|moto] [--data DIR] [--min-part-size N]
 *        [--vhost-domain D] [--ready-file F]
 *
 * The store behind it is s3rver (--backend s3rver, the default; --data its
 * directory) or moto's server mode (--backend moto), which has
 * AbortMultipartUpload and NoSuchUpload itself and no signature check
 * either. Requests reach s3rver without their Authorization header (it
 * would refuse the access key) and moto with it (moto refuses anonymous
 * reads of private objects); moto also gets application/octet-stream for
 * an application/x-www-form-urlencoded body (curl's default for
 * CURLOPT_POSTFIELDS), which its Flask would consume as a form.
 *
 * What it checks (S3's answer when the check fails):
 *   - an Authorization header "AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/
 *     s3/aws4_request, SignedHeaders=..., Signature=..." (none: 403
 *     AccessDenied; another scheme or a malformed one: 400
 *     AuthorizationHeaderMalformed; another region: 400
 *     AuthorizationHeaderMalformed);
 *   - the access key is the configured one (403 InvalidAccessKeyId);
 *   - x-amz-content-sha256 is present (400 InvalidRequest "Missing required
 *     header for this request: x-amz-content-sha256"), is UNSIGNED-PAYLOAD
 *     or a hex SHA-256 (400 InvalidArgument), and a hex SHA-256 matches the
 *     body (400 XAmzContentSHA256Mismatch);
 *   - no Transfer-Encoding (S3 takes no chunked body: 501 NotImplemented)
 *     and a PUT has a Content-Length (411 MissingContentLength);
 *   - host and every x-amz-* header present are among SignedHeaders (403
 *     AccessDenied "There were headers present in the request which were
 *     not signed");
 *   - x-amz-date within MAX_SKEW_S of this clock (403 RequestTimeTooSkewed)
 *     and its day equal to the credential's (403 SignatureDoesNotMatch);
 *   - the signature, computed from the canonical request as S3 computes it
 *     (403 SignatureDoesNotMatch): method; the path percent-decoded then
 *     encoded once again (unreserved characters and "/" kept, uppercase
 *     hex); the query parameters decoded, encoded, sorted by name then
 *     value, a parameter without "=" written "name="; the signed headers
 *     lowercased, values trimmed and inner blanks collapsed, several values
 *     joined with ","; the signed header list; x-amz-content-sha256 as the
 *     payload hash.
 *
 * Addressing: path-style (http://127.0.0.1:P/bucket/key) and virtual-host
 * (http://bucket.localhost:P/key; the Host's suffix is --vhost-domain,
 * default localhost); the signature is checked on the request as sent, the
 * request reaches s3rver path-style, and the log shows the /bucket/key path.
 *
 * What it adds to s3rver (with --backend s3rver only, moto has it):
 *   - AbortMultipartUpload (DELETE /bucket/key?uploadId=ID): the upload's
 *     directory in s3rver's store (DIR/bucket/._S3rver_uploads/ID) is
 *     removed, 204; an unknown upload is 404 NoSuchUpload;
 * What it adds to both:
 *   - UploadPart and CompleteMultipartUpload of an unknown upload are 404
 *     NoSuchUpload (s3rver would create the upload's directory, moto
 *     answers 500);
 *   - CompleteMultipartUpload refuses parts below minPartSize bytes other
 *     than the last (400 EntityTooSmall) as S3 does, from the sizes of the
 *     parts stored through the front (s3rver does not check; moto checks
 *     against a start-time setting, which s3server.py sets to 1 byte);
 *   - fault rules, a request log and counters (below).
 *
 * Control (no signature; JSON; the Python fixture is the only caller):
 *   GET  /__s3front/log      every request: {method, path (/bucket/key as
 *                            sent), vhost, query, kind, status, code,
 *                            outcome, reqBytes, respBytes, faults, t}
 *   POST /__s3front/faults   append rules (a JSON list), answers the list
 *   POST /__s3front/clear    drop the rules
 *   POST /__s3front/reset    drop the rules and the log
 *   POST /__s3front/config   {"minPartSize": N}
 * A rule is {type, count, kinds, match, status, ms, bytes}: `count`
 * requests it applies to (null: every one until reset), `kinds` the
 * request kinds it applies to (PutObject, UploadPart, ...; default by
 * type), `match` a substring of the path (default: any). Types:
 *   status        answer `status` (500 InternalError, 503 SlowDown, other:
 *                 its S3 code) with S3's XML error after reading the body;
 *                 nothing reaches s3rver (default kinds: the writes)
 *   put_delay     wait `ms` after the body arrived, then forward; when the
 *                 client is gone by then nothing is forwarded (outcome
 *                 "client_gone") (default kinds: the writes)
 *   kill_upload   reset the connection once `bytes` body bytes arrived;
 *                 nothing is forwarded (default kinds: the writes)
 *   get_delay     wait `ms` before the response head (default kinds:
 *                 GetObject, HeadObject)
 *   kill_download send the head and `bytes` body bytes, then reset the
 *                 connection (RST) (default kinds: GetObject)
 *   truncate      send the head (Content-Length the full size) and `bytes`
 *                 body bytes, then close the connection cleanly (FIN)
 *                 (default kinds: GetObject)
 * Every request is logged when its head is read, and its entry completed
 * when it ends, so counts are exact once a client holds its answer.
 *
 * Invariants: the whole request body is read (and hashed) before anything
 * is forwarded, so a refused or killed request never reaches the store and
 * a partial body never becomes an object; a rule's count is taken when it
 * is applied, once: kill_upload when the head is read (whatever the body
 * and its signature turn out to be), the others once the request is
 * verified.
 */
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');

const MAX_SKEW_S = 15 * 60;
const CONTROL = '/__s3front/';
const WRITES = ['PutObject', 'UploadPart', 'CreateMultipartUpload', 'CompleteMultipartUpload'];
const DEFAULT_KINDS = {
  status: WRITES, put_delay: WRITES, kill_upload: WRITES,
  get_delay: ['GetObject', 'HeadObject'], kill_download: ['GetObject'], truncate: ['GetObject'],
};
const CODES = {
  400: 'InvalidRequest', 403: 'AccessDenied', 404: 'NoSuchKey', 500: 'InternalError',
  503: 'SlowDown', 501: 'NotImplemented',
};

function parseArgs(argv) {
  const opts = { minPartSize: 5 * 1024 * 1024, vhostDomain: 'localhost', backend: 's3rver' };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '').replace(/-(.)/g, (_, c) => c.toUpperCase());
    opts[name] = argv[i + 1];
  }
  for (const k of ['port', 'upstreamPort', 'region', 'accessKey', 'secret']) {
    if (!opts[k]) throw new Error('s3front: --' + k + ' is required');
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
let rules = [];
let log = [];
const partSizes = new Map();       // "uploadId/partNumber" -> bytes, parts stored through here
const S3RVER = opts.backend === 's3rver';

// ------------------------------------------------------------------ helpers

function xmlEscape(s) {
  return String(s).replace(/[<>&'"]/g, c => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' }[c]));
}

function s3Error(status, code, message, extra) {
  const fields = Object.entries(extra || {}).map(([k, v]) => '<' + k + '>' + xmlEscape(v) + '</' + k + '>').join('');
  const body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>' + code + '</Code><Message>' +
    xmlEscape(message) + '</Message>' + fields + '<RequestId>s3front</RequestId></Error>';
  return { status, code, body: Buffer.from(body) };
}

/* S3's URI encoding: everything but A-Z a-z 0-9 - _ . ~ as %XX (uppercase),
 * and "/" too unless keepSlash. */
function uriEncode(s, keepSlash) {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-_.~]/.test(c) || (keepSlash && c === '/')) out += c;
    else out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

function decode(s) {
  try {
    return decodeURIComponent(s);
  } catch (e) {
    return s;
  }
}

function splitTarget(target) {
  const q = target.indexOf('?');
  return q < 0 ? [target, ''] : [target.slice(0, q), target.slice(q + 1)];
}

/* [[name, value]] decoded, in the order written; "a" is ["a", ""]. */
function queryPairs(query) {
  if (query === '') return [];
  return query.split('&').filter(p => p !== '').map(p => {
    const eq = p.indexOf('=');
    return eq < 0 ? [decode(p), ''] : [decode(p.slice(0, eq)), decode(p.slice(eq + 1))];
  });
}

function canonicalQuery(query) {
  const enc = queryPairs(query).map(([k, v]) => [uriEncode(k, false), uriEncode(v, false)]);
  enc.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return enc.map(([k, v]) => k + '=' + v).join('&');
}

/* Every value of header `name` (lowercase) as sent, trimmed and collapsed. */
function headerValues(req, name) {
  const vals = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i].toLowerCase() === name) vals.push(req.rawHeaders[i + 1].trim().replace(/\s+/g, ' '));
  }
  return vals;
}

function hmac(key, data) {
  return crypto.createHmac('sha256', key).update(data).digest();
}

function sha256hex(data) {
  return crypto.createHash('sha256').update(data).digest('hex');
}

/* The request's kind, as S3's API names it. */
/* The request's resource as a path-style path, /bucket/key: a Host
 * BUCKET.localhost (virtual-host addressing; curl resolves *.localhost to
 * the loopback itself) puts BUCKET before the path. */
function resourcePath(req, pathname) {
  const host = (req.headers.host || '').replace(/:\d+$/, '');
  const suffix = '.' + opts.vhostDomain;
  return host.endsWith(suffix) && host.length > suffix.length ? '/' + host.slice(0, -suffix.length) + pathname : pathname;
}

function kindOf(method, pathname, query) {
  const names = queryPairs(query).map(([k]) => k);
  const has = n => names.includes(n);
  const parts = pathname.split('/').filter(p => p !== '');
  if (parts.length === 0) return 'ListBuckets';
  if (parts.length === 1) {
    if (method === 'PUT') return 'CreateBucket';
    if (method === 'DELETE') return 'DeleteBucket';
    if (method === 'GET' && has('uploads')) return 'ListMultipartUploads';
    if (method === 'GET') return 'ListObjects';
    if (method === 'HEAD') return 'HeadBucket';
    return 'Other';
  }
  const table = {
    PUT: has('uploadId') ? 'UploadPart' : 'PutObject',
    POST: has('uploads') ? 'CreateMultipartUpload' : has('uploadId') ? 'CompleteMultipartUpload' : 'Other',
    DELETE: has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject',
    GET: has('uploadId') ? 'ListParts' : 'GetObject',
    HEAD: 'HeadObject',
  };
  return table[method] || 'Other';
}

// ------------------------------------------------------------------ signature

function parseAuthorization(value) {
  const m = /^AWS4-HMAC-SHA256 (.*)$/.exec(value || '');
  if (!m) return null;
  const fields = {};
  for (const part of m[1].split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  if (!fields.Credential || !fields.SignedHeaders || !fields.Signature) return null;
  const cred = fields.Credential.split('/');
  if (cred.length !== 5 || cred[4] !== 'aws4_request') return null;
  return {
    accessKey: cred[0], day: cred[1], region: cred[2], service: cred[3],
    signedHeaders: fields.SignedHeaders.split(';'), signature: fields.Signature,
  };
}

function amzTime(value) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value || '');
  return m ? Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) : NaN;
}

function canonicalRequest(req, auth, payloadHash) {
  const [pathname, query] = splitTarget(req.url);
  const headers = auth.signedHeaders.map(h => h + ':' + headerValues(req, h).join(',') + '\n').join('');
  return [req.method, uriEncode(decode(pathname), true), canonicalQuery(query), headers,
    auth.signedHeaders.join(';'), payloadHash].join('\n');
}

/* null when the head is acceptable so far, else the S3 error to answer. */
function checkHead(req) {
  const value = req.headers.authorization;
  if (value === undefined) return s3Error(403, 'AccessDenied', 'Access Denied');
  const auth = parseAuthorization(value);
  if (!auth) return s3Error(400, 'AuthorizationHeaderMalformed', 'The authorization header is malformed.');
  req.auth = auth;
  if (auth.accessKey !== opts.accessKey) {
    return s3Error(403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.',
      { AWSAccessKeyId: auth.accessKey });
  }
  if (auth.region !== opts.region || auth.service !== 's3') {
    return s3Error(400, 'AuthorizationHeaderMalformed', "the region '" + auth.region + "' is wrong; expecting '" +
      opts.region + "'", { Region: opts.region });
  }
  const hash = req.headers['x-amz-content-sha256'];
  if (hash === undefined) {
    return s3Error(400, 'InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
  }
  if (hash !== 'UNSIGNED-PAYLOAD' && !/^[0-9a-f]{64}$/.test(hash)) {
    return s3Error(400, 'InvalidArgument', 'x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a SHA-256 hex digest');
  }
  if (req.headers['transfer-encoding'] !== undefined) {
    return s3Error(501, 'NotImplemented', 'A header you provided implies functionality that is not implemented',
      { Header: 'Transfer-Encoding' });
  }
  if (req.method === 'PUT' && req.headers['content-length'] === undefined) {
    return s3Error(411, 'MissingContentLength', 'You must provide the Content-Length HTTP header.');
  }
  const unsigned = Object.keys(req.headers).filter(h => (h === 'host' || h.startsWith('x-amz-')) &&
    !auth.signedHeaders.includes(h));
  if (unsigned.length) {
    return s3Error(403, 'AccessDenied', 'There were headers present in the request which were not signed',
      { HeadersNotSigned: unsigned.join(', ') });
  }
  const t = amzTime(req.headers['x-amz-date']);
  if (isNaN(t)) return s3Error(403, 'AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
  if (Math.abs(Date.now() - t) > MAX_SKEW_S * 1000) {
    return s3Error(403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.');
  }
  return null;
}

function checkSignature(req, body) {
  const auth = req.auth;
  const hash = req.headers['x-amz-content-sha256'];
  if (hash !== 'UNSIGNED-PAYLOAD' && sha256hex(body) !== hash) {
    return s3Error(400, 'XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.",
      { ClientComputedContentSHA256: hash, S3ComputedContentSHA256: sha256hex(body) });
  }
  const amzDate = req.headers['x-amz-date'];
  const creq = canonicalRequest(req, auth, hash);
  const scope = [auth.day, auth.region, auth.service, 'aws4_request'].join('/');
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256hex(creq)].join('\n');
  let key = hmac('AWS4' + opts.secret, auth.day);
  for (const part of [auth.region, auth.service, 'aws4_request']) key = hmac(key, part);
  const expected = hmac(key, toSign).toString('hex');
  if (expected !== auth.signature || amzDate.slice(0, 8) !== auth.day) {
    return s3Error(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
      { AWSAccessKeyId: auth.accessKey, StringToSign: toSign, CanonicalRequest: creq, SignatureProvided: auth.signature });
  }
  return null;
}

// ------------------------------------------------------------------ faults

function takeRule(type, entry) {
  const rule = rules.find(r => r.type === type && (r.count === null || r.count > 0) &&
    (r.kinds || DEFAULT_KINDS[type]).includes(entry.kind) && (!r.match || entry.path.includes(r.match)));
  if (!rule) return null;
  if (rule.count !== null) rule.count -= 1;
  entry.faults.push(type);
  return rule;
}

function faultStatus(rule) {
  const code = rule.code || CODES[rule.status] || 'InternalError';
  const msg = rule.status === 503 ? 'Please reduce your request rate.' : 'We encountered an internal error. Please try again.';
  return s3Error(rule.status, code, msg);
}

// ------------------------------------------------------------------ answers

function send(res, entry, err) {
  entry.status = err.status;
  entry.code = err.code;
  entry.outcome = 'refused';
  res.writeHead(err.status, { 'Content-Type': 'application/xml', 'Content-Length': err.body.length });
  res.end(err.body);
}

function uploadsDir(bucket) {
  return path.join(opts.data, bucket, '._S3rver_uploads');
}

/* s3rver's directory for the request's upload (DIR/bucket/._S3rver_uploads/ID). */
function uploadDir(req, entry) {
  const bucket = decode(entry.path.split('/')[1]);
  const id = param(req, 'uploadId');
  return [id, path.join(uploadsDir(bucket), path.basename(id))];
}

function uploadExists(req, entry) {
  const [id, dir] = uploadDir(req, entry);
  return id !== '' && fs.existsSync(dir);
}

function abortUpload(req, res, entry) {
  const [id, dir] = uploadDir(req, entry);
  if (!uploadExists(req, entry)) {
    return send(res, entry, s3Error(404, 'NoSuchUpload', 'The specified upload does not exist.', { UploadId: id }));
  }
  fs.rmSync(dir, { recursive: true, force: true });
  entry.status = 204;
  entry.outcome = 'done';
  res.writeHead(204);
  res.end();
}

function param(req, name) {
  return (queryPairs(splitTarget(req.url)[1]).find(([k]) => k === name) || [])[1] || '';
}

/* S3's EntityTooSmall, which s3rver does not check (and moto only against
 * its start-time setting): from the sizes of the parts stored through here. */
function checkPartSizes(req, entry, body) {
  const id = param(req, 'uploadId');
  const numbers = [...body.toString().matchAll(/<PartNumber>\s*(\d+)\s*<\/PartNumber>/g)].map(m => +m[1]);
  for (const n of numbers.slice(0, -1)) {
    const size = partSizes.get(id + '/' + n);
    if (size !== undefined && size < Number(opts.minPartSize)) {
      return s3Error(400, 'EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size.',
        { PartNumber: n, MinSizeAllowed: opts.minPartSize });
    }
  }
  return null;
}

function forward(req, res, entry, body) {
  const headers = Object.assign({}, req.headers);
  if (S3RVER) delete headers.authorization;                 // then s3rver takes it as anonymous
  else if (/^application\/x-www-form-urlencoded/i.test(headers['content-type'] || '')) {
    headers['content-type'] = 'application/octet-stream';   // moto's Flask would parse the body away
  }
  delete headers.expect;
  delete headers['transfer-encoding'];
  headers['content-length'] = String(body.length);
  headers.host = '127.0.0.1:' + opts.upstreamPort;          // s3rver serves path-style only
  const target = entry.path + (entry.query ? '?' + entry.query : '');
  const up = http.request({ host: '127.0.0.1', port: opts.upstreamPort, method: req.method, path: target, headers },
    upres => relay(req, res, entry, upres));
  up.on('error', e => {
    entry.outcome = 'upstream_error: ' + e.message;
    if (!res.headersSent) send(res, entry, s3Error(500, 'InternalError', 'store: ' + e.message));
    else res.destroy();
  });
  up.end(body);
}

function relay(req, res, entry, upres) {
  const getDelay = takeRule('get_delay', entry);
  const kill = takeRule('kill_download', entry);
  const trunc = kill ? null : takeRule('truncate', entry);
  const cut = kill || trunc;
  const start = () => {
    if (res.destroyed) {
      upres.destroy();
      entry.outcome = 'client_gone';
      return;
    }
    entry.status = upres.statusCode;
    if (entry.kind === 'UploadPart' && upres.statusCode === 200) {
      partSizes.set(param(req, 'uploadId') + '/' + param(req, 'partNumber'), entry.reqBytes);
    }
    res.writeHead(upres.statusCode, upres.headers);
    if (req.method === 'HEAD' || !cut) {
      upres.on('data', c => { entry.respBytes += c.length; });
      upres.on('end', () => { entry.outcome = 'done'; });
      upres.pipe(res);
      return;
    }
    cutBody(res, entry, upres, Number(cut.bytes || 0), kill !== null);
  };
  if (getDelay) setTimeout(start, Number(getDelay.ms));
  else start();
}

function cutBody(res, entry, upres, limit, reset) {
  let sent = 0;
  const finish = () => {
    upres.destroy();
    entry.outcome = reset ? 'killed_download' : 'truncated';
    if (reset) res.socket.resetAndDestroy();
    else res.socket.end();
  };
  if (limit === 0) {
    res.flushHeaders();
    return setImmediate(finish);
  }
  upres.on('data', chunk => {
    if (sent >= limit) return;
    const piece = chunk.subarray(0, limit - sent);
    sent += piece.length;
    entry.respBytes += piece.length;
    if (sent >= limit) res.write(piece, finish);
    else res.write(piece);
  });
  upres.on('end', () => { if (sent < limit) finish(); });
}

// ------------------------------------------------------------------ control

function control(req, res) {
  const chunks = [];
  req.on('data', c => chunks.push(c));
  req.on('end', () => {
    const name = req.url.slice(CONTROL.length);
    const input = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : null;
    let out;
    if (name === 'log') out = log;
    else if (name === 'faults') {
      for (const r of input || []) rules.push(Object.assign({ count: null, kinds: null, match: null }, r));
      out = rules;
    } else if (name === 'clear') {
      rules = [];
      out = {};
    } else if (name === 'reset') {
      rules = [];
      log = [];
      out = {};
    } else if (name === 'config') out = Object.assign(opts, input || {}) && { minPartSize: opts.minPartSize };
    else out = { error: 'unknown control ' + name };
    const body = Buffer.from(JSON.stringify(out));
    res.writeHead(out && out.error ? 404 : 200, { 'Content-Type': 'application/json', 'Content-Length': body.length });
    res.end(body);
  });
}

// ------------------------------------------------------------------ requests

function onRequest(req, res) {
  if (req.url.startsWith(CONTROL)) return control(req, res);
  const [pathname, query] = splitTarget(req.url);
  const resource = resourcePath(req, pathname);
  const entry = {
    method: req.method, path: resource, vhost: resource !== pathname, query,
    kind: kindOf(req.method, resource, query), status: null,
    code: null, outcome: 'open', reqBytes: 0, respBytes: 0, faults: [], t: Date.now() / 1000,
  };
  log.push(entry);
  res.on('close', () => { if (entry.outcome === 'open') entry.outcome = 'client_gone'; });
  const refused = checkHead(req);
  const kill = refused ? null : takeRule('kill_upload', entry);      // before the body: not yet verified
  const chunks = [];
  req.on('data', c => {
    chunks.push(c);
    entry.reqBytes += c.length;
    if (kill && entry.reqBytes >= Number(kill.bytes || 0) && !req.socket.destroyed) {
      entry.outcome = 'killed_upload';
      req.socket.resetAndDestroy();
    }
  });
  req.on('end', () => {
    if (req.socket.destroyed && entry.outcome === 'killed_upload') return;
    onBody(req, res, entry, refused, Buffer.concat(chunks));
  });
}

function onBody(req, res, entry, refused, body) {
  if (refused) return send(res, entry, refused);
  const bad = checkSignature(req, body);
  if (bad) return send(res, entry, bad);
  const status = takeRule('status', entry);
  if (status) return send(res, entry, faultStatus(status));
  if (!['UploadPart', 'CompleteMultipartUpload'].includes(entry.kind)) return store(req, res, entry, body);
  withUpload(req, entry, exists => {
    if (!exists) return send(res, entry, s3Error(404, 'NoSuchUpload', 'The specified upload does not exist.'));
    store(req, res, entry, body);
  });
}

/* Calls done(whether the request's multipart upload exists): s3rver's
 * directory for it, or moto's ListParts (moto answers 500 to an UploadPart
 * of an unknown upload, S3 404 NoSuchUpload). */
function withUpload(req, entry, done) {
  if (S3RVER) return done(uploadExists(req, entry));
  const target = entry.path + '?' + canonicalQuery('uploadId=' + encodeURIComponent(param(req, 'uploadId')));
  const headers = { host: '127.0.0.1:' + opts.upstreamPort, authorization: req.headers.authorization };
  const up = http.request({ host: '127.0.0.1', port: opts.upstreamPort, method: 'GET', path: target, headers }, r => {
    r.resume();
    r.on('end', () => done(r.statusCode === 200));
  });
  up.on('error', () => done(false));
  up.end();
}

function store(req, res, entry, body) {
  if (entry.kind === 'CompleteMultipartUpload') {
    const small = checkPartSizes(req, entry, body);
    if (small) return send(res, entry, small);
  }
  const delay = takeRule('put_delay', entry);
  const go = () => {
    if (res.destroyed || req.socket.destroyed) {
      entry.outcome = 'client_gone';
      return;
    }
    if (S3RVER && entry.kind === 'AbortMultipartUpload') abortUpload(req, res, entry);
    else forward(req, res, entry, body);
  };
  if (delay) setTimeout(go, Number(delay.ms));
  else go();
}

const server = http.createServer(onRequest);
server.keepAliveTimeout = 60000;
server.listen(Number(opts.port), '127.0.0.1', () => {
  if (opts.readyFile) fs.writeFileSync(opts.readyFile, String(server.address().port));
});
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
});
