-- A stand-in for Supabase Vault's SQL interface, for databases without it (the Supabase profile has
-- no pgsodium): the names autoembed calls, vault.create_secret(new_secret, new_name,
-- new_description, new_key_id), vault.update_secret(secret_id, new_secret, ...) and the view
-- vault.decrypted_secrets. It stores secrets in plain text: it is no Vault, only its interface.
create schema vault;
create table vault.secrets (
    id uuid primary key default gen_random_uuid(),
    name text unique,
    description text not null default '',
    secret text not null,
    updated_at timestamptz not null default now()
);
create view vault.decrypted_secrets as
select id, name, description, secret, secret as decrypted_secret, updated_at from vault.secrets;
create function vault.create_secret(new_secret text, new_name text default null, new_description text default '',
                                    new_key_id uuid default null)
returns uuid language sql as $$
    insert into vault.secrets (secret, name, description) values (new_secret, new_name, new_description) returning id
$$;
create function vault.update_secret(secret_id uuid, new_secret text default null, new_name text default null,
                                    new_description text default null, new_key_id uuid default null)
returns void language sql as $$
    update vault.secrets set secret = coalesce(new_secret, secret), name = coalesce(new_name, name),
                             description = coalesce(new_description, description), updated_at = now()
    where id = secret_id
$$;
