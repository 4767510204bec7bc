import Config

# Read at boot from the environment hoist gives the release: PORT and
# HOIST_RELEASE from the unit, SECRET_KEY_BASE from `hoist secrets`.
if config_env() == :prod do
  secret =
    System.get_env("SECRET_KEY_BASE") ||
      raise "SECRET_KEY_BASE is missing; set it with `hoist secrets gen SECRET_KEY_BASE`"

  if byte_size(secret) < 64, do: raise("SECRET_KEY_BASE must be at least 64 bytes")

  config :hello_elixir,
    port: String.to_integer(System.get_env("PORT") || "4000"),
    release: System.get_env("HOIST_RELEASE", "dev"),
    secret_key_base: secret
end
