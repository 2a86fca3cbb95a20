CREATE TABLE users (
    id uuid PRIMARY KEY,
    email text NOT NULL UNIQUE CHECK (email = lower(email)),
    name text NOT NULL CHECK (name <> ''),
    password_hash text NOT NULL,
    roles text[] NOT NULL CHECK (roles <@ ARRAY['customer', 'admin']),
    created_at timestamptz NOT NULL
);

-- One family per login: every refresh token rotated from that login belongs to it, so a
-- replayed token can revoke the whole session at once.
CREATE TABLE refresh_families (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX refresh_families_user ON refresh_families (user_id);

-- Only the SHA-256 of a refresh token is kept.
CREATE TABLE refresh_tokens (
    digest bytea PRIMARY KEY,
    family_id uuid NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    issued_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- The newest key without retire_at signs; every key not yet retired is published in the JWKS.
CREATE TABLE signing_keys (
    kid text PRIMARY KEY,
    public_jwk jsonb NOT NULL,
    sealed_private_key bytea NOT NULL,
    created_at timestamptz NOT NULL,
    retire_at timestamptz
);
