r"""Training pipelines: configs, tasks, the one fit loop, strategies and
results."""
from graphkit.pipelines.config import (ConfigError, DataConfig, ModelConfig,
                                       OptimConfig, RunConfig, TrainConfig,
                                       apply_overrides)
from graphkit.pipelines.loop import fit
from graphkit.pipelines.presets import default_config, get_preset, preset
from graphkit.pipelines.results import RunResult, Summary
from graphkit.pipelines.tasks import (GraphTask, LinkTask, NodeTask, Task,
                                      make_task)

__all__ = ['fit', 'RunConfig', 'DataConfig', 'ModelConfig', 'OptimConfig',
           'TrainConfig', 'apply_overrides', 'ConfigError', 'preset',
           'get_preset', 'default_config', 'Task', 'NodeTask', 'LinkTask',
           'GraphTask', 'make_task', 'RunResult', 'Summary']
