defmodule HelloElixir.Release do
  @moduledoc "Tasks run from hooks with `bin/hello_elixir eval`, like a real app's migrations."

  def migrate do
    dir = System.get_env("STATE_DIRECTORY") || "/tmp"
    File.write!(Path.join(dir, "migrated"), "#{System.get_env("HOIST_RELEASE")}\n", [:append])
    IO.puts("migrated")
  end
end
