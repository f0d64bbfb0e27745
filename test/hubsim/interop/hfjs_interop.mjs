// Interop check: the official huggingface.js client (@huggingface/hub) against hf-mount-hubsim.
// Reads a model repo (listFiles, modelInfo, pathsInfo, fileDownloadInfo, xet downloads with
// ranges) and writes to a bucket (xet upload: dedup query, xorbs, shard, batch; then download,
// a deduplicated second upload and a delete). Exits non-zero on the first mismatch.
//   node hfjs_interop.mjs HUB_URL SOURCE_DIR
import { commit, deleteFile, downloadFile, fileDownloadInfo, listFiles, modelInfo, pathsInfo } from "@huggingface/hub";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";

const [hubUrl, srcDir] = process.argv.slice(2);
const sha = (b) => createHash("sha256").update(b).digest("hex");
let failures = 0;
let passes = 0;
function check(cond, what) {
  console.log(`${cond ? "ok  " : "FAIL"} ${what}`);
  if (cond) passes++;
  else failures++;
}

const repo = { type: "model", name: "acme/interop" };
const files = [];
for await (const f of listFiles({ repo, recursive: true, hubUrl })) files.push(f);
const byPath = Object.fromEntries(files.map((f) => [f.path, f]));
check(byPath["config.json"]?.type === "file" && !byPath["config.json"].xetHash, "listFiles: plain git file");
check(byPath["sub"]?.type === "directory", "listFiles: directory entry");
check(byPath["sub/model.bin"]?.xetHash?.length === 64 && byPath["sub/model.bin"].size === 3000000, "listFiles: xet file");
const info = await modelInfo({ name: "acme/interop", hubUrl, additionalFields: ["sha"] });
check(info.name === "acme/interop" && /^[0-9a-f]{40}$/.test(info.sha), "modelInfo: name and sha");
const pi = await pathsInfo({ repo, paths: ["config.json", "sub/model.bin", "missing"], expand: true, hubUrl });
check(pi.length === 2 && pi.every((p) => p.lastCommit?.id === info.sha), "pathsInfo: missing path omitted, lastCommit");
for (const p of ["config.json", "sub/model.bin", "text.txt"]) {
  const want = readFileSync(`${srcDir}/${p}`);
  const di = await fileDownloadInfo({ repo, path: p, hubUrl });
  check(di.size === want.length && !!di.xet === (p !== "config.json"), `fileDownloadInfo ${p}: size and xet`);
  const blob = await downloadFile({ repo, path: p, hubUrl, xet: true });
  const buf = Buffer.from(await blob.arrayBuffer());
  check(sha(buf) === sha(want), `downloadFile ${p}: bytes`);
  if (want.length > 200000) {
    const part = Buffer.from(await blob.slice(1000, 200000).arrayBuffer());
    check(sha(part) === sha(want.subarray(1000, 200000)), `downloadFile ${p}: slice`);
  }
}

const bucket = { type: "bucket", name: "alice/interop" };
const big = Buffer.concat([randomBytes(2_500_000), Buffer.alloc(1_000_000, 7), randomBytes(300_000)]);
const small = Buffer.from("hello bucket\n");
await commit({
  repo: bucket, hubUrl, accessToken: "hf_interop", title: "upload",
  operations: [
    { operation: "addOrUpdate", path: "data/big.bin", content: new Blob([big]) },
    { operation: "addOrUpdate", path: "small.txt", content: new Blob([small]) },
  ],
});
const listed = [];
for await (const f of listFiles({ repo: bucket, recursive: true, hubUrl })) listed.push(f.path);
check(listed.includes("data/big.bin") && listed.includes("small.txt"), "bucket listFiles after upload");
for (const [p, want] of [["data/big.bin", big], ["small.txt", small]]) {
  const buf = Buffer.from(await (await downloadFile({ repo: bucket, path: p, hubUrl, xet: true })).arrayBuffer());
  check(sha(buf) === sha(want), `bucket download ${p}`);
}
const big2 = Buffer.concat([big.subarray(0, 2_000_000), randomBytes(100_000), big.subarray(2_000_000)]);
await commit({
  repo: bucket, hubUrl, accessToken: "hf_interop", title: "upload2",
  operations: [{ operation: "addOrUpdate", path: "data/big2.bin", content: new Blob([big2]) }],
});
const b2 = Buffer.from(await (await downloadFile({ repo: bucket, path: "data/big2.bin", hubUrl, xet: true })).arrayBuffer());
check(sha(b2) === sha(big2), "bucket download after a deduplicated upload");
await deleteFile({ repo: bucket, path: "small.txt", hubUrl, accessToken: "hf_interop" });
const after = [];
for await (const f of listFiles({ repo: bucket, recursive: true, hubUrl })) after.push(f.path);
check(!after.includes("small.txt") && after.length === 2, "bucket delete");

console.log(`${passes} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
