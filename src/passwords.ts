import { hash, verify, type Options } from '@node-rs/argon2'

// argon2id with OWASP's recommended minimum (19 MiB, 2 passes): slow for an attacker,
// a few milliseconds on the server.
// `algorithm` 2 is Argon2id (a const enum in the typings, so it cannot be imported by name).
const options: Options = { algorithm: 2, memoryCost: 19456, timeCost: 2, parallelism: 1 }

export async function hashPassword (password: string): Promise<string> {
  return await hash(password, options)
}

/** A hash to verify against when the name is unknown, so both refusals take as long. */
let decoyHash: Promise<string> | undefined

export async function verifyPassword (passwordHash: string | undefined, password: string): Promise<boolean> {
  if (passwordHash === undefined) {
    decoyHash ??= hashPassword('canopy-decoy-password')
    await verify(await decoyHash, password)
    return false
  }
  return await verify(passwordHash, password)
}
