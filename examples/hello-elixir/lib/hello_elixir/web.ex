defmodule HelloElixir.Web do
  @moduledoc "An :inets httpd callback module: GET / names the release, GET /up is the health check."
  require Record
  Record.defrecordp(:mod, Record.extract(:mod, from_lib: "inets/include/httpd.hrl"))

  def unquote(:do)(data) do
    release = Application.get_env(:hello_elixir, :release)

    case {mod(data, :method), mod(data, :request_uri)} do
      {~c"GET", ~c"/"} -> reply(200, "hello from release #{release}\n")
      {~c"GET", ~c"/up"} -> reply(200, "ok\n")
      _ -> reply(404, "not found\n")
    end
  end

  defp reply(status, body) do
    body = String.to_charlist(body)

    {:proceed,
     [
       response:
         {:response, [code: status, content_type: ~c"text/plain", content_length: Integer.to_charlist(length(body))],
          body}
     ]}
  end
end
