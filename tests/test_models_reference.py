"""NumPy reference of the PyTorch ResNeSt / split-attention code (NCHW, OIHW).

Written from the official PyTorch semantics (torch.nn.Conv2d cross-correlation
with groups, BatchNorm2d in eval mode, AvgPool2d count_include_pad=True,
MaxPool2d with -inf padding), independently of the flax modules. Also builds
state dicts with the official key names and shapes of `resnest.torch.resnest50`.
The tests in this file check the reference itself.
"""
from __future__ import annotations

import numpy as np

BN_EPS = 1e-5


def conv2d(x, w, b=None, stride=1, pad=0, groups=1):
  """x [N, C, H, W], w [O, C/groups, kh, kw] -> [N, O, H', W'] (torch.nn.functional.conv2d)."""
  n, c, h, wd = x.shape
  o, cg, kh, kw = w.shape
  assert c == cg * groups, (x.shape, w.shape, groups)
  xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
  ho = (h + 2 * pad - kh) // stride + 1
  wo = (wd + 2 * pad - kw) // stride + 1
  og = o // groups
  out = np.zeros((n, o, ho, wo), np.float64)
  for g in range(groups):
    xg = xp[:, g * cg:(g + 1) * cg]
    wg = w[g * og:(g + 1) * og]
    for i in range(kh):
      for j in range(kw):
        patch = xg[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride]
        out[:, g * og:(g + 1) * og] += np.einsum('nchw,oc->nohw', patch, wg[:, :, i, j])
  if b is not None:
    out += b[None, :, None, None]
  return out


def batch_norm(x, sd, prefix):
  """BatchNorm2d in eval mode with state-dict entries `prefix`.{weight,bias,running_*}."""
  g, b = sd[prefix + '.weight'], sd[prefix + '.bias']
  m, v = sd[prefix + '.running_mean'], sd[prefix + '.running_var']
  inv = g / np.sqrt(v + BN_EPS)
  return (x - m[None, :, None, None]) * inv[None, :, None, None] + b[None, :, None, None]


def relu(x):
  return np.maximum(x, 0)


def avg_pool(x, k, stride, pad):
  """AvgPool2d(k, stride, pad), zero padding counted in the average."""
  xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
  ho = (x.shape[2] + 2 * pad - k) // stride + 1
  wo = (x.shape[3] + 2 * pad - k) // stride + 1
  out = np.zeros(x.shape[:2] + (ho, wo))
  for i in range(k):
    for j in range(k):
      out += xp[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride]
  return out / (k * k)


def max_pool_3x3_s2(x):
  xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
  ho, wo = (x.shape[2] - 1) // 2 + 1, (x.shape[3] - 1) // 2 + 1
  out = np.full(x.shape[:2] + (ho, wo), -np.inf)
  for i in range(3):
    for j in range(3):
      out = np.maximum(out, xp[:, :, i:i + 2 * ho:2, j:j + 2 * wo:2])
  return out


def softmax(x, axis):
  e = np.exp(x - x.max(axis=axis, keepdims=True))
  return e / e.sum(axis=axis, keepdims=True)


def splat(x, sd, p, *, channels, radix, cardinality, stride=1):
  """Original-release SplAtConv2d (kernel 3, padding 1) in eval mode."""
  y = conv2d(x, sd[p + '.conv.weight'], sd.get(p + '.conv.bias'), stride, 1,
             cardinality * radix)
  y = relu(batch_norm(y, sd, p + '.bn0'))
  n = y.shape[0]
  splits = [y[:, r * channels:(r + 1) * channels] for r in range(radix)]
  gap = sum(splits).mean(axis=(2, 3), keepdims=True)
  gap = conv2d(gap, sd[p + '.fc1.weight'], sd[p + '.fc1.bias'], groups=cardinality)
  gap = relu(batch_norm(gap, sd, p + '.bn1'))
  att = conv2d(gap, sd[p + '.fc2.weight'], sd[p + '.fc2.bias'], groups=cardinality)
  att = softmax(att.reshape(n, radix, channels), axis=1)
  return sum(att[:, r, :, None, None] * splits[r] for r in range(radix))


def resnest_forward(image, sd, *, stem_width, widths, blocks, radix=2):
  """ResNeSt (deep stem, avg_down, avd) in eval mode: image [N, 3, H, W] -> (x0, x2..x5)."""
  x = relu(batch_norm(conv2d(image, sd['conv1.0.weight'], stride=2, pad=1), sd, 'conv1.1'))
  x = relu(batch_norm(conv2d(x, sd['conv1.3.weight'], pad=1), sd, 'conv1.4'))
  x = conv2d(x, sd['conv1.6.weight'], pad=1)
  x0 = relu(batch_norm(x, sd, 'bn1'))
  x = max_pool_3x3_s2(x0)
  feats = [x0]
  for s, (width, nb) in enumerate(zip(widths, blocks)):
    for i in range(nb):
      p = f'layer{s + 1}.{i}'
      stride = 2 if (s > 0 and i == 0) else 1
      y = relu(batch_norm(conv2d(x, sd[p + '.conv1.weight']), sd, p + '.bn1'))
      y = splat(y, sd, p + '.conv2', channels=width, radix=radix, cardinality=1)
      if stride > 1:
        y = avg_pool(y, 3, stride, 1)
      y = batch_norm(conv2d(y, sd[p + '.conv3.weight']), sd, p + '.bn3')
      shortcut = x
      if p + '.downsample.1.weight' in sd:
        if stride > 1:
          shortcut = avg_pool(shortcut, stride, stride, 0)
        shortcut = batch_norm(conv2d(shortcut, sd[p + '.downsample.1.weight']), sd,
                              p + '.downsample.2')
      x = relu(y + shortcut)
    feats.append(x)
  return tuple(feats)


def official_resnest_state_dict(*, stem_width=32, widths=(64, 128, 256, 512),
                                blocks=(3, 4, 6, 3), radix=2, num_classes=1000,
                                num_batches_tracked=True, seed=0):
  """Random state dict with the key names and shapes of resnest.torch.resnest50.

  (`ResNet(Bottleneck, [3, 4, 6, 3], radix=2, groups=1, bottleneck_width=64,
  deep_stem=True, stem_width=32, avg_down=True, avd=True, avd_first=False)`.)
  """
  rng = np.random.default_rng(seed)
  sd = {}

  def conv(key, o, i, k, bias=False):
    sd[key + '.weight'] = (rng.standard_normal((o, i, k, k)) * np.sqrt(2.0 / (i * k * k))
                           ).astype(np.float32)
    if bias:
      sd[key + '.bias'] = (0.1 * rng.standard_normal(o)).astype(np.float32)

  def bn(key, c):
    sd[key + '.weight'] = (1 + 0.1 * rng.standard_normal(c)).astype(np.float32)
    sd[key + '.bias'] = (0.1 * rng.standard_normal(c)).astype(np.float32)
    sd[key + '.running_mean'] = (0.1 * rng.standard_normal(c)).astype(np.float32)
    sd[key + '.running_var'] = rng.uniform(0.5, 1.5, c).astype(np.float32)
    if num_batches_tracked:
      sd[key + '.num_batches_tracked'] = np.array(1000, np.int64)

  conv('conv1.0', stem_width, 3, 3)
  bn('conv1.1', stem_width)
  conv('conv1.3', stem_width, stem_width, 3)
  bn('conv1.4', stem_width)
  conv('conv1.6', 2 * stem_width, stem_width, 3)
  bn('bn1', 2 * stem_width)
  inplanes = 2 * stem_width
  for s, (width, nb) in enumerate(zip(widths, blocks)):
    for i in range(nb):
      p = f'layer{s + 1}.{i}'
      conv(p + '.conv1', width, inplanes, 1)
      bn(p + '.bn1', width)
      inter = max(width * radix // 4, 32)
      conv(p + '.conv2.conv', width * radix, width // radix, 3)
      bn(p + '.conv2.bn0', width * radix)
      conv(p + '.conv2.fc1', inter, width, 1, bias=True)
      bn(p + '.conv2.bn1', inter)
      conv(p + '.conv2.fc2', width * radix, inter, 1, bias=True)
      conv(p + '.conv3', 4 * width, width, 1)
      bn(p + '.bn3', 4 * width)
      stride = 2 if (s > 0 and i == 0) else 1
      if i == 0 and (stride != 1 or inplanes != 4 * width):
        conv(p + '.downsample.1', 4 * width, inplanes, 1)
        bn(p + '.downsample.2', 4 * width)
      inplanes = 4 * width
  sd['fc.weight'] = rng.standard_normal((num_classes, inplanes)).astype(np.float32) * 0.01
  sd['fc.bias'] = np.zeros(num_classes, np.float32)
  return sd


# ---- tests of the reference itself ----------------------------------------------------


def test_conv2d_matches_direct_sum():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((1, 4, 5, 6))
  w = rng.standard_normal((6, 2, 3, 3))
  out = conv2d(x, w, stride=2, pad=1, groups=2)
  xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
  o, yy, xx = 4, 1, 2  # output channel 4 is in group 1 (input channels 2, 3)
  ref = sum(xp[0, 2 + c, 2 * yy + i, 2 * xx + j] * w[o, c, i, j]
            for c in range(2) for i in range(3) for j in range(3))
  assert out.shape == (1, 6, 3, 3)
  np.testing.assert_allclose(out[0, o, yy, xx], ref, rtol=1e-12)


def test_official_state_dict_resnest50_size():
  sd = official_resnest_state_dict()
  n_params = sum(v.size for k, v in sd.items()
                 if not k.endswith(('running_mean', 'running_var', 'num_batches_tracked')))
  # ResNeSt-50: 27.48M parameters including the 1000-way classifier.
  assert n_params == 27_483_240
  assert sd['layer1.0.conv2.conv.weight'].shape == (128, 32, 3, 3)
  assert sd['layer1.0.conv2.fc1.weight'].shape == (32, 64, 1, 1)
  assert sd['layer4.0.downsample.1.weight'].shape == (2048, 1024, 1, 1)
  assert 'layer1.1.downsample.1.weight' not in sd
