/*
Copyright 2026 The apikey-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

	http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/
package controller

import (
	"context"
	"strings"

	"github.com/mobile-next/apikey-operator/internal/mobilenext"
)

// KeyService is the remote side of an ApiKey as the reconcilers see it: the
// three calls the Mobile Next API offers. The integration tests hand the
// reconcilers the real client pointed at the emulator; unit tests can hand
// them a KeyServiceFuncs.
type KeyService interface {
	ListKeys(ctx context.Context) ([]mobilenext.Key, error)
	CreateKey(ctx context.Context, name string) (*mobilenext.CreatedKey, error)
	DeleteKey(ctx context.Context, id string) error
}

// ClientFactory builds the KeyService for a connection's settings.
type ClientFactory func(cfg mobilenext.Config) (KeyService, error)

// NewMobileNextClient is the ClientFactory of the real API client. Listings
// keep only the keys the operator made (their names carry an attempt
// marker): the operator's memory follows its own keys, not the size of the
// organization.
func NewMobileNextClient(cfg mobilenext.Config) (KeyService, error) {
	if cfg.Keep == nil {
		cfg.Keep = func(k mobilenext.Key) bool { return strings.Contains(k.Name, markerPrefix) }
	}
	return mobilenext.NewClient(cfg)
}

// KeyServiceFuncs adapts plain functions to KeyService.
type KeyServiceFuncs struct {
	List   func(ctx context.Context) ([]mobilenext.Key, error)
	Create func(ctx context.Context, name string) (*mobilenext.CreatedKey, error)
	Delete func(ctx context.Context, id string) error
}

// ListKeys calls f.List.
func (f KeyServiceFuncs) ListKeys(ctx context.Context) ([]mobilenext.Key, error) {
	return f.List(ctx)
}

// CreateKey calls f.Create.
func (f KeyServiceFuncs) CreateKey(ctx context.Context, name string) (*mobilenext.CreatedKey, error) {
	return f.Create(ctx, name)
}

// DeleteKey calls f.Delete.
func (f KeyServiceFuncs) DeleteKey(ctx context.Context, id string) error {
	return f.Delete(ctx, id)
}
