import pytest

from graphkit.pipelines import (ConfigError, RunConfig, apply_overrides,
                                default_config, get_preset)


def test_overrides_are_coerced():
    cfg = apply_overrides(RunConfig(), [
        'model.hidden_channels=128', 'lr=0.001', 'train.patience=none',
        'train.num_neighbors=15,10,5', 'data.normalize_features=true',
        'data.ratios=0.85,0.05,0.1', 'model.norm=batch_norm'])
    assert cfg.model.hidden_channels == 128
    assert cfg.optim.lr == 0.001
    assert cfg.train.patience is None
    assert cfg.train.num_neighbors == (15, 10, 5)
    assert cfg.data.normalize_features is True
    assert cfg.data.ratios == (0.85, 0.05, 0.1)
    assert cfg.model.norm == 'batch_norm'


def test_bad_key_names_the_key():
    with pytest.raises(ConfigError, match="Unknown config key "
                       "'model.hiden_channels'"):
        apply_overrides(RunConfig(), ['model.hiden_channels=3'])


def test_bad_value_names_key_and_type():
    with pytest.raises(ConfigError, match="'model.hidden_channels'.*int"):
        apply_overrides(RunConfig(), ['model.hidden_channels=big'])
    with pytest.raises(ConfigError, match="'lr'.*float"):
        apply_overrides(RunConfig(), ['lr=fast'])
    with pytest.raises(ConfigError, match='bool'):
        apply_overrides(RunConfig(), ['data.normalize_features=maybe'])
    with pytest.raises(ConfigError, match='key=value'):
        apply_overrides(RunConfig(), ['lr'])


def test_ambiguous_short_key():
    with pytest.raises(ConfigError, match='Ambiguous'):
        apply_overrides(RunConfig(), ['name=x'])


def test_presets_and_round_trip():
    cfg = default_config('gcn', 'cora')
    assert cfg.preset == 'gcn-cora' and cfg.model.hidden_channels == 16
    assert default_config('sage', 'texas').model.name == 'sage'
    again = RunConfig.from_dict(cfg.to_dict())
    assert again == cfg
    with pytest.raises(ValueError, match='Valid presets'):
        get_preset('nope')


def test_ncn_ddi_preset_has_the_reference_dropouts():
    from graphkit.pipelines import get_preset
    m = get_preset('ncn-ogbl-ddi').model
    # the reference README's ddi line: xdp .05, tdp 0, gnndp .4, predp .6
    assert (m.input_dropout, m.tail_dropout, m.dropout,
            m.decoder_dropout) == (0.05, 0.0, 0.4, 0.6)
    assert m.hidden_channels == 224 and m.encoder == 'pure-sum'


def test_ddi_gae_presets_follow_the_ogb_example():
    from graphkit.pipelines import get_preset
    # examples/linkproppred/ddi: --num_layers 2 sets the encoder and the
    # predictor depth; emb / model / predictor are clipped separately at 1
    for name in ('gcn-ogbl-ddi', 'sage-ogbl-ddi', 'nsd-diag-ogbl-ddi'):
        cfg = get_preset(name)
        assert (cfg.model.num_layers, cfg.model.decoder_layers) == (2, 2)
        assert (cfg.optim.grad_clip, cfg.optim.clip_per_module) == (1.0,
                                                                     True)
        assert cfg.optim.lr == 0.005 and cfg.train.batch_size == 65536


def test_sheaf4rec_v1_preset_builds_both_models_with_one_setting():
    from graphkit.models.registry import call_with_supported, resolve
    cfg = get_preset('sheaf4rec-v1-movielens-100k')
    assert (cfg.model.num_layers, cfg.model.readout, cfg.model.init_std,
            cfg.optim.lr, cfg.train.embedding_reg) == (10, 'mean', 0.1,
                                                      5e-3, 1e-4)
    kwargs = {k: v for k, v in vars(cfg.model).items()
              if v is not None and k != 'name'}
    kwargs.update(num_users=4, num_items=3)
    for name in ('sheaf4rec', 'lightgcn'):
        model, used = call_with_supported(resolve(name).builder, kwargs)
        # the same depth and the same N(0, 0.1^2) initial embeddings
        assert {'num_layers', 'init_std'} <= used
        assert model.num_layers == 10
        assert 0.05 < float(model.embedding.weight.std()) < 0.15
