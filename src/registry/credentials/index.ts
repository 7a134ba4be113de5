export type { Credential, CredentialSource } from './types.js';
export { findCredential } from './find.js';
export { saveCredential, removeCredential, kitAuthPath } from './store.js';
export { verifyLogin } from './login.js';
export { dockerConfigPath } from './docker-config.js';
