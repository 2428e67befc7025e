// Package caddymodule holds every Caddy module of caddy-p2p: the p2p_tracker
// HTTP handler, the admin API routes and the plugin namespaces.
package caddymodule
