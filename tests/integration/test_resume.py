from .helpers import VALUE
def test_x():
    assert VALUE == 1
