defmodule HelloElixir.Application do
  @moduledoc false
  use Application

  @impl true
  def start(_type, _args) do
    port = Application.get_env(:hello_elixir, :port, 4000)
    {:ok, _pid} =
      :inets.start(:httpd,
        port: port,
        server_name: ~c"hello_elixir",
        server_root: ~c"/tmp",
        document_root: ~c"/tmp",
        bind_address: :any,
        modules: [HelloElixir.Web]
      )

    IO.puts("hello_elixir #{Application.get_env(:hello_elixir, :release)} listening on :#{port}")
    Supervisor.start_link([], strategy: :one_for_one, name: HelloElixir.Supervisor)
  end
end
