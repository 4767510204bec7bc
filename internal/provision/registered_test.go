package provision

// config checks build.builder with the builders internal/build
// registers: the specs these tests parse are checked as hoist does.
import _ "github.com/hoistdev/hoist/internal/build"
