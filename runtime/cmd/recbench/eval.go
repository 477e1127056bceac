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

package main

import "github.com/recpipeline/recpipeline/runtime/internal/recclient"

// evalFlags names the fields of quality.Options after the flags of
// recbench eval, for the errors of Options.Default; a flag given as 0
// takes quality's default, as the field left at 0 does.
var evalFlags = recclient.Names{
	"URL":         "-url",
	"Data":        "-data",
	"MovieLens":   "-movielens",
	"TestFrac":    "-test-frac",
	"K":           "-k",
	"Users":       "-users",
	"Concurrency": "-concurrency",
	"Batch":       "-batch",
}
