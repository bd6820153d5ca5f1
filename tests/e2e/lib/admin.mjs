// The admin token of every e2e run (GATEWAY_ADMIN_TOKEN), shared by the suites
// that call /__gateway/* admin endpoints: the Worker has one secret of that name.
import crypto from 'node:crypto';

export const ADMIN_TOKEN = 'e2e-admin-' + crypto.randomBytes(16).toString('hex');
