// Reference descriptors from face-api itself, for tests/test_facerec.py (see README.md here).
//
//   node make_reference.js INPUT_DIR MODEL_DIR OUT_JSON
//
// INPUT_DIR: written by `python tests/test_facerec.py --write-inputs INPUT_DIR` (inputs.json + NAME.rgb:
// 150*150*3 uint8, HWC RGB). MODEL_DIR: face-api's package/model (face_recognition_model.bin + manifest).
// Runs face-api's FaceRecognitionNet on tfjs's pure-JS `cpu` backend (float32) and writes, per input, its
// definition and the 128-d descriptor from computeFaceDescriptor.
'use strict';

const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

async function main() {
  const [inputDir, modelDir, outJson] = process.argv.slice(2);
  if (!outJson) throw new Error('usage: node make_reference.js INPUT_DIR MODEL_DIR OUT_JSON');
  await tf.setBackend('cpu');
  await tf.ready();

  const manifest = JSON.parse(fs.readFileSync(path.join(modelDir, 'face_recognition_model-weights_manifest.json')));
  const specs = manifest.flatMap((g) => g.weights);
  const bin = fs.readFileSync(path.join(modelDir, manifest[0].paths[0]));
  const buffer = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
  const weightMap = tf.io.decodeWeights(buffer, specs);
  await faceapi.nets.faceRecognitionNet.loadFromWeightMap(weightMap);

  const inputs = JSON.parse(fs.readFileSync(path.join(inputDir, 'inputs.json')));
  const out = [];
  for (const spec of inputs) {
    const raw = fs.readFileSync(path.join(inputDir, `${spec.name}.rgb`));
    if (raw.length !== spec.size * spec.size * 3) throw new Error(`${spec.name}: wrong size ${raw.length}`);
    const t = tf.tensor3d(new Int32Array(raw), [spec.size, spec.size, 3], 'int32');
    const d = await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(t);
    t.dispose();
    out.push({ ...spec, descriptor: Array.from(d) });
    console.log(spec.name, Array.from(d.slice(0, 3)).map((v) => v.toFixed(5)).join(' '));
  }
  const result = {
    source: '@vladmandic/face-api 1.7.15 FaceRecognitionNet.computeFaceDescriptor',
    tfjs: tf.version.tfjs,
    backend: tf.getBackend(),
    inputs: out,
  };
  fs.writeFileSync(outJson, `${JSON.stringify(result, null, 1)}\n`);
}

main().catch((e) => { console.error(e); process.exit(1); });
