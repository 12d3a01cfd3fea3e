"""Every registered GLMC architecture and pretrained tag honours the timm contract and its metadata."""

import pytest
import timm
import torch

import glmc_zoo
from glmc_zoo.models import WEIGHTS, get_weights

ARCHS = glmc_zoo.glmc_model_names()
RESNETS = [a for a in ARCHS if a != "glmc_timm"]  # glmc_timm's contract is its backbone's: tests/test_backbones.py
TAGS = sorted(n for n in WEIGHTS if "." in n)  # every weight set we describe, loadable or not
LOADABLE = glmc_zoo.glmc_model_names(pretrained=True)  # what timm offers as pretrained


def _input(model, batch=2):
    size = model.pretrained_cfg["input_size"]
    side = size[1] if size[1] <= 32 else 64  # ImageNet-style nets run at 64 px here to keep CPU tests fast
    return torch.randn(batch, 3, side, side)


def test_expected_registry():
    assert ARCHS == ["glmc_resnet32", "glmc_resnet32_w16", "glmc_resnet50", "glmc_resnext50_32x4d", "glmc_timm"]
    for tag in ["glmc_resnet32.cifar10_lt_if100", "glmc_resnet32.cifar100_lt_if10",
                "glmc_resnext50_32x4d.imagenet_lt", "glmc_resnext50_32x4d.imagenet_lt_bs",
                "glmc_resnext50_32x4d.inat2018"]:
        assert tag in TAGS


def test_registering_twice_is_an_error():
    from glmc_zoo.models.glmc_resnet import register_glmc_model

    def glmc_resnet32(pretrained=False, **kwargs):
        raise AssertionError

    with pytest.raises(ValueError, match="already registered"):
        register_glmc_model(glmc_resnet32)
    assert timm.create_model("glmc_resnet32").__class__.__name__ == "GLMCCifarResNet"


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_backward_every_parameter_gets_a_gradient(arch):
    torch.manual_seed(0)
    # timm's ResNets zero the last BatchNorm of each block (no gradient reaches the block's other layers on the
    # first step); glmc_timm's default backbone is one
    kw = dict(backbone_args=dict(zero_init_last=False)) if arch == "glmc_timm" else {}
    model = timm.create_model(arch, num_classes=7, **kw).train()
    out = model.forward_train(_input(model))
    assert out.logits.shape == out.logits_cb.shape == (2, 7)
    assert out.z.shape == out.p.shape == (2, model.proj_dim)
    (out.logits.sum() + out.logits_cb.sum() + out.p.sum()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing
    model.eval()
    x = _input(model)
    assert torch.equal(model(x), model.forward_train(x).logits_cb)  # inference = the fc_cb head


@pytest.mark.parametrize("arch", ARCHS)
def test_training_heads_false_keeps_only_what_forward_uses(arch):
    """Every parameter of an inference-only model gets a gradient from forward(): DistributedDataParallel's
    condition for fine-tuning without find_unused_parameters."""
    torch.manual_seed(0)
    kw = dict(backbone_args=dict(zero_init_last=False)) if arch == "glmc_timm" else {}
    model = timm.create_model(arch, num_classes=7, training_heads=False, **kw).train()
    model(_input(model)).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing
    heads = {k.split(".")[0] for k in model.state_dict()} & {"fc", "fc_cb", "projection_head", "contrast_head"}
    assert heads == {"fc_cb"}
    with pytest.raises(RuntimeError, match="training_heads=False .* training_heads=True"):
        model.forward_train(_input(model))
    model.reset_classifier(3)
    assert model(_input(model)).shape == (2, 3) and model.num_classes == 3 and not hasattr(model, "fc")
    with pytest.raises(ValueError, match="training_heads='false': give True or False"):
        timm.create_model(arch, training_heads="false", **kw)  # as a command line would spell it


def test_training_heads_false_loads_full_weights_saves_and_trains_under_ddp(tmp_path):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from glmc_zoo.hub import save_pretrained

    name = "glmc_resnet32_w16.cifar10_lt_if100_e200_jpeg"
    full = timm.create_model(name, pretrained=True).eval()
    lean = timm.create_model(name, pretrained=True, training_heads=False).eval()
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(full(x), lean(x))
    save_pretrained(lean, tmp_path / "w")  # the folder's config records the option, and loads back
    again = timm.create_model(f"local-dir:{tmp_path / 'w'}", pretrained=True).eval()
    assert again.training_heads is False and torch.equal(again(x), full(x))

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        def steps(model):
            ddp = DistributedDataParallel(model.train())
            opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
            for _ in range(3):
                ddp(x).logsumexp(1).mean().backward()
                opt.step()
                opt.zero_grad()

        with pytest.raises(RuntimeError, match="finished reduction"):  # what the option is for
            steps(timm.create_model(name, pretrained=True))
        steps(lean)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("arch", ARCHS)
def test_timm_contract(arch):
    model = timm.create_model(arch, num_classes=5).eval()
    x = _input(model)
    feats = model.forward_features(x)
    assert feats.shape[1] == model.num_features
    pre = model.forward_head(feats, pre_logits=True)
    assert pre.shape == (2, model.num_features)
    assert model.get_classifier() is model.fc_cb
    model.reset_classifier(3)
    assert model.fc.out_features == model.fc_cb.out_features == 3 and model(x).shape == (2, 3)
    model.reset_classifier(0)
    assert model(x).shape == (2, model.num_features)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("feature_cls", [None, "getter"])
def test_features_only_matches_hooks_on_the_real_stages(arch, feature_cls):
    torch.manual_seed(0)
    model = timm.create_model(arch, num_classes=3).eval()
    x = _input(model)
    names = [f["module"] for f in model.feature_info]
    seen = {}
    hooks = [model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o))
             for n in names]
    model(x)
    for h in hooks:
        h.remove()
    kw = dict(feature_cls=feature_cls) if feature_cls else {}
    feat_model = timm.create_model(arch, num_classes=3, features_only=True, **kw).eval()
    from timm.models._features import FeatureGetterNet

    # timm's FeatureListNet keeps the model's own keys; glmc_timm takes the getter by default (a ViT has no stages)
    prefix = "model." if isinstance(feat_model, FeatureGetterNet) else ""
    trunk = {prefix + k: v for k, v in model.state_dict().items()
             if not k.startswith(("fc", "projection_head", "contrast_head"))}
    missing, unexpected = feat_model.load_state_dict(trunk, strict=False)
    assert not missing and all("num_batches" in k or "layer" in k for k in unexpected), (missing, unexpected)
    outs = feat_model(x)
    assert len(outs) == len(names)
    for name, o in zip(names, outs, strict=True):
        assert torch.allclose(seen[name], o), name
        assert (o >= 0).all()  # post-ReLU: the stem's activation is not skipped
    info = feat_model.feature_info
    assert info.channels() == [o.shape[1] for o in outs] and info.module_name() == names
    assert [d["module"] for d in info.get_dicts()] == names and info.channels(-1) == outs[-1].shape[1]


@pytest.mark.parametrize("arch", RESNETS)
def test_forward_intermediates_contract(arch):
    torch.manual_seed(0)
    model = timm.create_model(arch, num_classes=3).eval()
    x = _input(model)
    n = len(model.feature_info)
    final, inter = model.forward_intermediates(x)
    assert len(inter) == n and torch.equal(final, model.forward_features(x))
    last2 = model.forward_intermediates(x, indices=2, intermediates_only=True)
    assert [t.shape for t in last2] == [t.shape for t in inter[-2:]]
    picked = model.forward_intermediates(x, indices=[0, 1], stop_early=True, intermediates_only=True)
    assert all(torch.equal(a, b) for a, b in zip(picked, inter[:2]))
    with pytest.raises(ValueError, match="NCHW"):
        model.forward_intermediates(x, output_fmt="NHWC")
    kept = model.prune_intermediate_layers(indices=[1])
    assert kept == [1] and isinstance(model.get_submodule(model.stage_names[-1]), torch.nn.Identity)
    assert torch.equal(model.forward_intermediates(x, indices=[1], intermediates_only=True)[0], inter[1])


@pytest.mark.parametrize("arch", ARCHS)
def test_grad_checkpointing_gives_the_same_gradients(arch):
    torch.manual_seed(0)
    model = timm.create_model(arch, num_classes=3).train()
    x = _input(model)

    def grads():
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)
        out = model.forward_train(x)
        (out.logits.sum() + out.logits_cb.sum() + out.p.sum()).backward()
        return {k: p.grad.clone() for k, p in model.named_parameters()}

    state = {k: v.clone() for k, v in model.state_dict().items()}
    plain = grads()
    model.load_state_dict(state)  # the same BN statistics before the second pass
    model.set_grad_checkpointing(True)
    ckpt = grads()
    assert plain.keys() == ckpt.keys()
    for k in plain:
        assert torch.allclose(plain[k], ckpt[k], atol=1e-5, rtol=1e-4), k


@pytest.mark.parametrize("arch", RESNETS)
def test_timm_head_options(arch):
    model = timm.create_model(arch, num_classes=0, global_pool="")
    x = _input(model)
    out = model(x)
    assert out.ndim == 4 and out.shape[1] == model.num_features  # unpooled (B, C, H, W), as timm
    assert model.get_classifier(name_only=True) == "fc_cb"
    assert model.head_hidden_size == model.num_features
    groups = model.group_matcher(coarse=True)
    assert set(groups) == {"stem", "blocks"}
    dropped = timm.create_model(arch, num_classes=3, drop_rate=0.5).train()
    assert dropped.head_drop.p == 0.5
    torch.manual_seed(0)
    a, b = dropped(x), dropped(x)
    assert not torch.equal(a, b)  # dropout is active in training
    with pytest.raises(ValueError, match="drop_path_rate"):
        timm.create_model(arch, drop_path_rate=0.1)


@pytest.mark.parametrize("name", TAGS)
def test_pretrained_config_consistency(name):
    cfg = timm.models.get_pretrained_cfg(name)
    assert cfg.num_classes == len(cfg.label_names)
    # timm offers a tag as pretrained only when its weights load here
    ws = WEIGHTS[name]
    assert bool(cfg.has_weights) == ws.loadable == (name in LOADABLE)
    model = timm.create_model(name, pretrained=False)
    for head in cfg.classifier:
        assert model.get_submodule(head).out_features == cfg.num_classes
    assert model.get_submodule(cfg.first_conv).in_channels == 3
    assert ws.availability in ("bundled", "published", "released", "withdrawn")
    assert ws.labels == tuple(cfg.label_names) and ws.preprocessing["mean"] == tuple(cfg.mean)  # one record, one cfg
    if ws.metrics:
        assert ws.metrics_kind in ("measured", "reported") and ws.metrics_source
        assert (ws.metrics_kind == "measured") == (ws.trained_by == "glmc-zoo")


def test_every_listed_pretrained_tag_loads_offline():
    """In timm, a listed tag loads: so it is here, for every tag timm.list_pretrained('glmc*') gives."""
    assert LOADABLE == timm.list_pretrained("glmc*") and LOADABLE
    # `glmc-zoo list --pretrained` (weight_sets) lists them in timm's natural order too: if10, if50, if100
    assert [w.name for w in glmc_zoo.weight_sets() if w.loadable] == LOADABLE
    names = [w.name for w in glmc_zoo.weight_sets()]
    assert names.index("glmc_resnet32.cifar10_lt_if50") < names.index("glmc_resnet32.cifar10_lt_if100")
    assert not timm.is_model_pretrained("glmc_resnet32")  # released weights are converted, not downloaded
    for name in LOADABLE:
        model = timm.create_model(name, pretrained=True).eval()
        with torch.no_grad():
            out = model(_input(model))
        assert out.shape[1] == model.pretrained_cfg["num_classes"] and torch.isfinite(out).all()
    note = get_weights("glmc_resnet32.cifar100_lt_if100").note
    assert "glmc-zoo convert CKPT --arch glmc_resnet32 --num-classes 100 --tag cifar100_lt_if100 --released" in note


def test_parameter_counts_match_the_reference():
    def backbone_params(m):
        return sum(p.numel() for n, p in m.named_parameters() if not n.startswith(("fc_cb", "projection", "contrast")))

    # reference section 2: about 7.4M (width 64) and 0.47M (width 16) for the ResNet-32 with one fc
    assert abs(backbone_params(timm.create_model("glmc_resnet32", num_classes=100)) / 1e6 - 7.4) < 0.1
    assert abs(backbone_params(timm.create_model("glmc_resnet32_w16", num_classes=10)) / 1e6 - 0.47) < 0.01
    rx = timm.create_model("glmc_resnext50_32x4d", num_classes=1000)
    tv_keys = set(timm.create_model("resnext50_32x4d").state_dict())
    assert set(rx.state_dict()) - tv_keys == {k for k in rx.state_dict() if k.startswith(("fc_cb", "projection",
                                                                                          "contrast"))}


def test_no_shortcut_keys_in_the_cifar_net():
    assert not [k for k in timm.create_model("glmc_resnet32").state_dict() if "shortcut" in k]


def test_unpublished_weights_say_so():
    from glmc_zoo.errors import WeightsNotAvailableError

    with pytest.raises(WeightsNotAvailableError, match="not on the Hub.*glmc-zoo convert CKPT --arch glmc_resnet32"):
        timm.create_model("glmc_resnet32.cifar100_lt_if100", pretrained=True)
    with pytest.raises(WeightsNotAvailableError, match="architecture only"):
        timm.create_model("glmc_resnet50", pretrained=True)


def test_withdrawn_weights_name_their_replacement():
    """The 30-epoch weights glmc-zoo 0.1.0 shipped stay a known name: loading them names what replaced them."""
    from glmc_zoo.errors import WeightsNotAvailableError
    from glmc_zoo.inference import DEFAULT_MODEL

    old = "glmc_resnet32_w16.cifar10_lt_if100_jpeg"
    ws = get_weights(old)
    assert ws.availability == "withdrawn" and not ws.loadable and old not in LOADABLE
    assert DEFAULT_MODEL != old and get_weights(DEFAULT_MODEL).availability == "bundled"
    with pytest.raises(WeightsNotAvailableError, match=f"withdrawn in 0.2.0.*use {DEFAULT_MODEL}"):
        timm.create_model(old, pretrained=True)
    # never the architecture's default: plain `glmc_resnet32_w16` with pretrained=True loads the shipped weights
    assert timm.create_model("glmc_resnet32_w16", pretrained=True).pretrained_cfg["tag"] == DEFAULT_MODEL.split(".")[1]


@pytest.mark.slow  # each architecture compiles for 11-18 s
@pytest.mark.parametrize("arch", ARCHS)
def test_torch_export_and_fullgraph_compile(arch):
    """torch.export and a graph-break-free torch.compile (dynamo capture; the eager backend keeps the
    test fast on CPU) of the inference forward and of the training outputs and GLMC loss."""
    from glmc_zoo.training.method import class_weights, glmc_loss

    torch.manual_seed(0)
    model = timm.create_model(arch, num_classes=3).eval()
    x = _input(model)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        assert torch.allclose(exported.module()(x), model(x), atol=1e-5)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), atol=1e-5)
    model.train()
    label_w = class_weights(torch.tensor([50, 20, 5]), 1.2)
    y = torch.nn.functional.one_hot(torch.tensor([0, 2]), 3).float()

    def train_loss(a, b):
        return glmc_loss(model.forward_train(a), model.forward_train(b), y, y, label_w, 0.5, 1.0)["loss"]

    loss = torch.compile(train_loss, fullgraph=True, backend="eager")(x, x.flip(0))
    loss.backward()
    assert torch.isfinite(loss) and model.fc_cb.weight.grad is not None


@pytest.mark.slow  # 6-10 s each: one of each model class (the CIFAR and the ImageNet-style ResNet)
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
@pytest.mark.parametrize("arch", ["glmc_resnet32_w16", "glmc_resnet50"])
def test_torchscript_of_the_model_and_of_its_fx_graph_match_eager(arch):
    """What timm's own model tests ask of every timm model (tests/test_models.py: forward_torchscript,
    forward_fx_torchscript), here with the outputs compared too. TorchScript is deprecated in this torch;
    timm still offers it, so its models keep working under it."""
    from timm.layers import set_scriptable
    from torchvision.models.feature_extraction import create_feature_extractor

    torch.manual_seed(0)
    with set_scriptable(True):
        model = timm.create_model(arch, num_classes=4).eval()
    x = _input(model)
    with torch.no_grad():
        want = model(x)
        assert torch.allclose(torch.jit.script(model)(x), want, atol=1e-5)
        fx = create_feature_extractor(model, return_nodes=["fc_cb"])
        assert torch.allclose(torch.jit.script(fx)(x)["fc_cb"], want, atol=1e-5)


def test_default_cfg_follows_a_replaced_pretrained_cfg():
    """timm sets `default_cfg` as an alias once; glmc_timm (and a fine-tuned or bundled model) replace
    `pretrained_cfg` afterwards, and the alias must show the replacement (timm's default_cfgs test reads it)."""
    model = timm.create_model("glmc_timm")
    assert model.default_cfg is model.pretrained_cfg and model.default_cfg["first_conv"] == "backbone.conv1"
    assert model.default_cfg["first_conv"] + ".weight" in model.state_dict()
    model.pretrained_cfg = dict(model.pretrained_cfg, num_classes=3)
    assert model.default_cfg["num_classes"] == 3


def test_the_registry_read_without_timm_agrees_with_timm():
    """glmc_zoo.registry (what `list`/`info` read without torch) names the same architectures and defaults as timm."""
    from glmc_zoo.registry import architectures, get_weights

    assert architectures() == sorted(timm.list_models("glmc_*"))
    for arch in architectures():
        cfg = timm.models.get_pretrained_cfg(arch)
        assert get_weights(arch).name == (f"{arch}.{cfg.tag}" if cfg.tag else arch), arch


def test_each_architectures_default_is_named_not_the_first_by_name():
    """torchvision's DEFAULT: a weight set shipped later whose name sorts first (an IF 10 run before IF 100)
    does not become the default, for glmc-zoo or for timm's registration order; records are typed."""
    from dataclasses import replace

    from glmc_zoo.inference import DEFAULT_MODEL
    from glmc_zoo.registry import DEFAULT_TAGS, WEIGHTS, _defaults_first, default_weights

    default = WEIGHTS[DEFAULT_MODEL]
    later = replace(default, name="glmc_resnet32_w16.cifar10_lt_if10_e200_jpeg")
    table = _defaults_first({later.name: later, **WEIGHTS}, DEFAULT_TAGS)
    assert next(n for n in table if n.startswith("glmc_resnet32_w16.")) == DEFAULT_MODEL
    for arch, tag in DEFAULT_TAGS.items():
        assert default_weights(arch).name == f"{arch}.{tag}"
        assert next(n for n in WEIGHTS if n.startswith(arch + ".")) == f"{arch}.{tag}"  # what timm takes as default
    with pytest.raises(ValueError, match="availability 'shipped'"):
        replace(default, availability="shipped")
    with pytest.raises(ValueError, match="metrics_kind"):
        replace(default, metrics_kind="guessed")
