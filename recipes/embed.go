// Package recipes embeds the built-in Lua recipes, which spell out every deploy
// step, and the systemd unit and Caddy site templates they render.
package recipes

import "embed"

// FS holds the recipes (binary.lua, python.lua), the modules they require
// (deploy.lua, server.lua, steps/*.lua) and templates/.
//
//go:embed *.lua steps templates
var FS embed.FS
