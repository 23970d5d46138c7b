"""The Operators group: watch and act on connections, never read or change secrets."""

from django.db import migrations

OPERATOR_PERMISSIONS = [
    ("connections", "app", "view"),
    ("connections", "connection", "view"),
    ("connections", "customer", "view"),
    ("connections", "customeruser", "view"),
    ("connections", "configvariable", "view"),
    ("connections", "configvariable", "change"),  # renew now, disconnect
    ("connections", "statustransition", "view"),
    ("oauthflow", "tokenrequest", "view"),
]


def create_group(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="Operators")
    for app_label, model, action in OPERATOR_PERMISSIONS:
        group.permissions.add(
            Permission.objects.get(
                content_type__app_label=app_label, codename=f"{action}_{model}"
            )
        )


def remove_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="Operators").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("connections", "0001_initial"),
        ("oauthflow", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, remove_group)]
