"""Graders for the exercises at the end of every chapter.

A grader is called ``check_<chapter>_<n>`` and takes the reader's answer (a value
or a function). It prints a one-line success message, or raises
``ExerciseFailed`` (an ``AssertionError``) whose message says what was
expected, what came back, and a hint. One module per chapter: ``ch00``, ``ch01``, ...;
every grader is written with one helper, ``_grading.Exercise`` (call the answer, compare
tensors, explain the failure, print the success line).
"""

from ._grading import ExerciseFailed
from .ch00 import check_00_1, check_00_2, check_00_3
from .ch01 import check_01_1, check_01_2, check_01_3, check_01_4
from .ch02 import check_02_1, check_02_2, check_02_3, check_02_4
from .ch03 import check_03_1, check_03_2, check_03_3, check_03_4
from .ch04 import check_04_1, check_04_2, check_04_3, check_04_4
from .ch05 import check_05_1, check_05_2, check_05_3, check_05_4
from .ch06 import check_06_1, check_06_2, check_06_3, check_06_4
from .ch07 import check_07_1, check_07_2, check_07_3, check_07_4
from .ch08 import check_08_1, check_08_2, check_08_3, check_08_4
from .ch09 import check_09_1, check_09_2, check_09_3, check_09_4
from .ch10 import check_10_1, check_10_2, check_10_3, check_10_4
from .ch11 import check_11_1, check_11_2, check_11_3, check_11_4

__all__ = [
    "ExerciseFailed",
    "check_00_1",
    "check_00_2",
    "check_00_3",
    "check_01_1",
    "check_01_2",
    "check_01_3",
    "check_01_4",
    "check_02_1",
    "check_02_2",
    "check_02_3",
    "check_02_4",
    "check_03_1",
    "check_03_2",
    "check_03_3",
    "check_03_4",
    "check_04_1",
    "check_04_2",
    "check_04_3",
    "check_04_4",
    "check_05_1",
    "check_05_2",
    "check_05_3",
    "check_05_4",
    "check_06_1",
    "check_06_2",
    "check_06_3",
    "check_06_4",
    "check_07_1",
    "check_07_2",
    "check_07_3",
    "check_07_4",
    "check_08_1",
    "check_08_2",
    "check_08_3",
    "check_08_4",
    "check_09_1",
    "check_09_2",
    "check_09_3",
    "check_09_4",
    "check_10_1",
    "check_10_2",
    "check_10_3",
    "check_10_4",
    "check_11_1",
    "check_11_2",
    "check_11_3",
    "check_11_4",
]
