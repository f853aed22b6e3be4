import pytest
from audit.models import LedgerHead

@pytest.mark.django_db
def test_x():
    assert LedgerHead.objects.get(pk=1).tree_size == 0
