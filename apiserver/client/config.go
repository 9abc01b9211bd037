package client

import (
	"os"
	"path/filepath"

	"github.com/capstanhq/capstan/apiserver/wire"
)

// Config is the client config file's format (apiserver/wire owns it).
type Config = wire.Config

// LoadConfig reads a config file (see wire.LoadConfig).
func LoadConfig(path string) (*Config, error) { return wire.LoadConfig(path) }

// SaveConfig writes a config file with mode 0600 (see wire.SaveConfig).
func SaveConfig(path string, c *Config) error { return wire.SaveConfig(path, c) }

// FromFile returns a client for the config file at path.
func FromFile(path string) (*Client, error) {
	cfg, err := LoadConfig(path)
	if err != nil {
		return nil, err
	}
	return New(cfg)
}

// DefaultConfigPath is where the CLI looks when neither --config nor
// $CAPSTAN_CONFIG is given: ~/.config/capstan/config.yaml.
func DefaultConfigPath() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "capstan", "config.yaml")
}

// ResolveConfigPath picks the config file: the flag, else $CAPSTAN_CONFIG,
// else the default path.
func ResolveConfigPath(flag string) string {
	if flag != "" {
		return flag
	}
	if env := os.Getenv("CAPSTAN_CONFIG"); env != "" {
		return env
	}
	return DefaultConfigPath()
}
