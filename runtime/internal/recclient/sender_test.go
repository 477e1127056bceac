/*
Copyright 2026 The RecPipeline Authors.

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

package recclient

import "testing"

func TestSendOptionsDefault(t *testing.T) {
	flags := Names{"Batch": "-batch", "MaxBody": "-max-body"}
	for name, tc := range map[string]struct {
		o       SendOptions
		names   Names
		want    SendOptions
		wantErr string
	}{
		"the defaults":       {want: SendOptions{Batch: 1000, MaxBody: MaxBodyBytes, Concurrency: 2}},
		"given values stay":  {o: SendOptions{Batch: 5, MaxBody: 2048, Concurrency: 7}, want: SendOptions{Batch: 5, MaxBody: 2048, Concurrency: 7}},
		"a batch too large":  {o: SendOptions{Batch: MaxEvents + 1}, wantErr: "Batch 10001 must be between 1 and 10000"},
		"named after a flag": {o: SendOptions{Batch: -1}, names: flags, wantErr: "-batch -1 must be between 1 and 10000"},
		"a body too small":   {o: SendOptions{MaxBody: 1023}, names: flags, wantErr: "-max-body 1023 must be at least 1024"},
		"an unnamed field":   {o: SendOptions{Concurrency: 257}, names: flags, wantErr: "Concurrency 257 must be between 1 and 256"},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.o.Default(tc.names)
			if tc.wantErr == "" && (err != nil || tc.o != tc.want) {
				t.Errorf("Default left %+v, %v; want %+v", tc.o, err, tc.want)
			}
			if tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr) {
				t.Errorf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}
