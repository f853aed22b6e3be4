// A real OpenID provider for the tests and the demo's single sign-on -- never for production.
//
// It is panva's oidc-provider (OpenID Certified), configured with one confidential client (code flow,
// PKCE required, client_secret_post as mozilla-django-oidc sends by default), a fresh RS256 key per
// start, its own plain HTML sign-in pages (password, then a one-time code when a second factor is asked
// for) and RP-initiated logout. Everything lives in memory: a restart forgets every session.
//
// Usage: node server.js --port 0 --accounts accounts.json --client-id ID --client-secret SECRET
//          [--redirect-uri URI]... [--post-logout-redirect-uri URI]...
// (each option may also come from the environment: IDP_PORT, IDP_HOST, IDP_ACCOUNTS, IDP_CLIENT_ID,
// IDP_CLIENT_SECRET, IDP_REDIRECT_URIS and IDP_POST_LOGOUT_REDIRECT_URIS, space separated.)
// Prints one line "READY <issuer>" once listening; exits on SIGTERM/SIGINT.
//
// Accounts file: [{"username", "password", "otp", "groups": [...], "name", "email"}, ...]; the subject
// (`sub`) is the username.

import { generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { interactionPolicy } from 'oidc-provider';

export const ACR_PASSWORD = 'urn:mlg:loa:1';
export const ACR_2FA = 'urn:mlg:loa:2fa';

const { values: args } = parseArgs({
  options: {
    host: { type: 'string', default: process.env.IDP_HOST || '127.0.0.1' },
    port: { type: 'string', default: process.env.IDP_PORT || '0' },
    accounts: { type: 'string', default: process.env.IDP_ACCOUNTS },
    'client-id': { type: 'string', default: process.env.IDP_CLIENT_ID || 'mlg-console' },
    'client-secret': { type: 'string', default: process.env.IDP_CLIENT_SECRET },
    'redirect-uri': { type: 'string', multiple: true },
    'post-logout-redirect-uri': { type: 'string', multiple: true },
  },
});

function fail(message) {
  process.stderr.write(`test idp: ${message}\n`);
  process.exit(2);
}

const fromEnv = (name) => (process.env[name] || '').split(/\s+/).filter(Boolean);
const redirectUris = args['redirect-uri'] || fromEnv('IDP_REDIRECT_URIS');
const postLogoutRedirectUris = args['post-logout-redirect-uri'] || fromEnv('IDP_POST_LOGOUT_REDIRECT_URIS');
if (!args.accounts) fail('--accounts FILE is required');
if (!args['client-secret']) fail('--client-secret is required');
if (redirectUris.length === 0) fail('at least one --redirect-uri is required');
const port = Number(args.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad --port ${args.port}`);

const accounts = new Map();
for (const account of JSON.parse(readFileSync(args.accounts, 'utf8'))) {
  if (!account.username || !account.password) fail('every account needs a username and a password');
  accounts.set(account.username, account);
}

// Constant-time comparison, so the demo does not teach a timing leak.
function same(given, expected) {
  const a = Buffer.from(String(given ?? ''));
  const b = Buffer.from(String(expected ?? ''));
  return a.length === b.length && b.length > 0 && timingSafeEqual(a, b);
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig',
};

function wantsSecondFactor(params) {
  return String(params.acr_values || '').split(/\s+/).includes(ACR_2FA);
}

// The login prompt of the default policy, plus one check: a client that asks for the two-factor acr
// (acr_values) gets the sign-in pages again unless this session already signed in with one.
const policy = interactionPolicy.base();
policy.get('login').checks.add(new interactionPolicy.Check(
  'second_factor_required',
  'a second factor is required',
  (ctx) => {
    const { oidc } = ctx;
    if (!wantsSecondFactor(oidc.params) || oidc.result?.login) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
    return oidc.acr === ACR_2FA ? interactionPolicy.Check.NO_NEED_TO_PROMPT : interactionPolicy.Check.REQUEST_PROMPT;
  },
));

// Test-provider convenience, not OIDC behaviour: a registered redirect URI on a loopback host or on
// Django's test host matches whatever port it is requested with, because the tests and the demo run the
// relying party on ports chosen at run time. Scheme, host and path must still match exactly.
const PORT_FREE_HOSTS = new Set(['127.0.0.1', 'localhost', 'testserver']);
function allowedIgnoringPort(value, registered) {
  let wanted;
  try { wanted = new URL(value); } catch { return false; }
  if (!PORT_FREE_HOSTS.has(wanted.hostname) || wanted.username || wanted.password) return false;
  return registered.some((uri) => {
    const allowed = new URL(uri);
    return allowed.protocol === wanted.protocol && allowed.hostname === wanted.hostname
      && allowed.pathname === wanted.pathname && allowed.search === wanted.search && !wanted.hash;
  });
}

const issuer = `http://${args.host}:${port}`;

function buildProvider(issuerUrl) {
  const provider = new Provider(issuerUrl, {
    clients: [{
      client_id: args['client-id'],
      client_secret: args['client-secret'],
      redirect_uris: redirectUris,
      post_logout_redirect_uris: postLogoutRedirectUris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
      id_token_signed_response_alg: 'RS256',
    }],
    clientAuthMethods: ['client_secret_post', 'client_secret_basic'],
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    pkce: { required: () => true, methods: ['S256'] },
    acrValues: [ACR_PASSWORD, ACR_2FA],
    scopes: ['openid', 'email', 'profile', 'groups'],
    claims: {
      sid: null,
      iss: null,
      // How and when the person signed in, and the groups, ride on `openid`: always in the ID token,
      // even for a client asking only "openid email" (mozilla-django-oidc's default scopes).
      openid: ['sub', 'groups', 'acr', 'amr', 'auth_time'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
    },
    // Claims in the ID token itself, not only at userinfo: the relying party reads them from there.
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: true, logoutSource },
      userinfo: { enabled: true },
    },
    interactions: { policy, url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    // A first-party client: consent is granted without asking, for whatever it requested.
    async loadExistingGrant(ctx) {
      const { oidc } = ctx;
      const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
      let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
      if (!grant) {
        if (!oidc.session.accountId) return undefined;
        grant = new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
      }
      grant.addOIDCScope([...(oidc.requestParamScopes || [])].join(' '));
      grant.addOIDCClaims(['groups', 'email', 'email_verified', 'name', 'preferred_username']);
      await grant.save();
      return grant;
    },
    async findAccount(ctx, sub) {
      const account = accounts.get(sub);
      if (!account) return undefined;
      return {
        accountId: sub,
        async claims() {
          return {
            sub,
            email: account.email,
            email_verified: Boolean(account.email),
            name: account.name || sub,
            preferred_username: sub,
            groups: account.groups || [],
          };
        },
      };
    },
    renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = page('Sign-in error', `<p class="error">${escape(out.error)}: ${escape(out.error_description || '')}</p>`);
    },
  });
  provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(value) {
    return this.redirectUris.includes(value) || allowedIgnoringPort(value, this.redirectUris);
  };
  provider.Client.prototype.postLogoutRedirectUriAllowed = function postLogoutRedirectUriAllowed(value) {
    return this.postLogoutRedirectUris.includes(value) || allowedIgnoringPort(value, this.postLogoutRedirectUris);
  };
  return provider;
}

function escape(text) {
  return String(text ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(title)} · Test IdP</title>
<style>body{font-family:system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem}
label{display:block;margin:.6rem 0}input[type=text],input[type=password]{width:100%;padding:.4rem}
.error{color:#b00020}.note{color:#555;font-size:.9em}button{padding:.4rem 1rem}</style></head>
<body><h1>${escape(title)}</h1>${body}<p class="note">Test identity provider — for tests and the local demo only.</p></body></html>`;
}

// The end_session confirmation: a form the browser submits at once (oidc-provider needs the POST with
// its xsrf token), with a button for clients that run no script.
async function logoutSource(ctx, form) {
  ctx.body = page('Signing out', `${form}<p>Signing you out of the test identity provider…</p>
<button form="op.logoutForm" name="logout" value="yes">Sign out</button>
<script>document.forms['op.logoutForm'].insertAdjacentHTML('beforeend','<input type="hidden" name="logout" value="yes">');document.forms['op.logoutForm'].submit()</script>`);
}

function loginPage(uid, { error, username = '', mfaAsked } = {}) {
  return page('Sign in', `${error ? `<p class="error" role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login" autocomplete="off">
<label>Username <input type="text" name="username" value="${escape(username)}" autofocus required></label>
<label>Password <input type="password" name="password" required></label>
${mfaAsked ? '<p>This application asks for your second factor next.</p>'
    : '<label><input type="checkbox" name="use_second_factor" value="1"> Use my second factor</label>'}
<button type="submit">Sign in</button></form>`);
}

function otpPage(uid, { error } = {}) {
  return page('Second factor', `${error ? `<p class="error" role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/otp" autocomplete="off">
<label>One-time code <input type="text" name="otp" inputmode="numeric" autofocus required></label>
<button type="submit">Verify</button></form>`);
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks = [];
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > 64 * 1024) { reject(new Error('form too large')); req.destroy(); return; }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}

function send(res, status, html) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(html);
}

// Password checked, code not yet: interaction uid -> {accountId, at, wrongCodes}. Kept here rather than
// in the interaction so a half-finished sign-in can never be resumed as a finished one. Entries older
// than an interaction's life (1 h) are dropped; MAX_WRONG_CODES wrong codes send the person back to the
// password (a six-digit code must not be guessable by trying them all).
const passwordDone = new Map();
const MAX_WRONG_CODES = 5;
function rememberPassword(uid, accountId) {
  const now = Date.now();
  for (const [key, value] of passwordDone) if (now - value.at > 3600 * 1000) passwordDone.delete(key);
  passwordDone.set(uid, { accountId, at: now, wrongCodes: 0 });
}

async function interaction(provider, req, res) {
  const url = new URL(req.url, issuer);
  const [, , uid, step] = url.pathname.split('/');
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch {
    send(res, 400, page('Sign-in error', '<p class="error">This sign-in has expired or is unknown; start again from the application.</p>'));
    return;
  }
  if (details.uid !== uid) {
    send(res, 400, page('Sign-in error', '<p class="error">This sign-in does not match your browser session.</p>'));
    return;
  }
  const { prompt, params } = details;
  const mfaAsked = wantsSecondFactor(params);

  if (prompt.name === 'consent') {
    // Normally loadExistingGrant has granted already; this is the fallback.
    const grant = new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    grant.addOIDCScope(String(params.scope || 'openid'));
    grant.addOIDCClaims(['groups', 'email', 'email_verified', 'name', 'preferred_username']);
    await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
    return;
  }

  if (req.method === 'GET' && !step) {
    send(res, 200, passwordDone.has(uid) ? otpPage(uid) : loginPage(uid, { mfaAsked, username: params.login_hint }));
    return;
  }
  if (req.method !== 'POST') {
    send(res, 405, page('Sign-in error', '<p class="error">Method not allowed.</p>'));
    return;
  }
  const form = await readForm(req);

  if (step === 'login') {
    const username = form.get('username') || '';
    const account = accounts.get(username);
    if (!account || !same(form.get('password'), account.password)) {
      send(res, 200, loginPage(uid, { error: 'Wrong username or password.', username, mfaAsked }));
      return;
    }
    const ts = Math.floor(Date.now() / 1000);
    if (mfaAsked || form.get('use_second_factor')) {
      rememberPassword(uid, username);
      send(res, 200, otpPage(uid));
      return;
    }
    await provider.interactionFinished(req, res, {
      login: { accountId: username, ts, amr: ['pwd'], acr: ACR_PASSWORD, remember: false },
    }, { mergeWithLastSubmission: false });
    return;
  }

  if (step === 'otp') {
    const done = passwordDone.get(uid);
    if (!done) {
      send(res, 200, loginPage(uid, { error: 'Sign in with your password first.', mfaAsked }));
      return;
    }
    if (!same(form.get('otp'), accounts.get(done.accountId).otp)) {
      done.wrongCodes += 1;
      if (done.wrongCodes >= MAX_WRONG_CODES) {
        passwordDone.delete(uid);
        send(res, 200, loginPage(uid, { error: 'Too many wrong codes: sign in again.', mfaAsked }));
        return;
      }
      send(res, 200, otpPage(uid, { error: 'Wrong one-time code.' }));
      return;
    }
    passwordDone.delete(uid);
    await provider.interactionFinished(req, res, {
      login: { accountId: done.accountId, ts: Math.floor(Date.now() / 1000), amr: ['pwd', 'otp'], acr: ACR_2FA, remember: false },
    }, { mergeWithLastSubmission: false });
    return;
  }
  send(res, 404, page('Sign-in error', '<p class="error">Not found.</p>'));
}

const server = http.createServer();
server.on('error', (error) => fail(`cannot listen on ${args.host}:${port}: ${error.message}`));
server.listen(port, args.host, () => {
  const actualIssuer = `http://${args.host}:${server.address().port}`;
  const provider = buildProvider(actualIssuer);
  provider.on('server_error', (ctx, error) => process.stderr.write(`test idp: ${error.stack}\n`));
  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (req.url.startsWith('/interaction/')) {
      interaction(provider, req, res).catch((error) => {
        process.stderr.write(`test idp: ${error.stack}\n`);
        if (!res.headersSent) send(res, 500, page('Sign-in error', '<p class="error">Internal error.</p>'));
      });
      return;
    }
    callback(req, res);
  });
  process.stdout.write(`READY ${actualIssuer}\n`);
});

const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
